"""Chat and e-mail alert channels of a user (`/api/v1/{discord,telegram,slack,email}/channels`)."""
