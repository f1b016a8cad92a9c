"""Kept for imports from elsewhere: the app client and the user/key factory now live in tests/support."""

from __future__ import annotations

from tests.support.app import running
from tests.support.users import PASSWORD, SECRET, add_key, add_user, bearer, settings_for, signup, user_with_key

__all__ = ["PASSWORD", "SECRET", "add_key", "add_user", "bearer", "running", "settings_for", "signup", "user_with_key"]
