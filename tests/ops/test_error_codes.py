"""A KamiyoError subclass that sets only its status answers with that status's standard code."""

from kamiyo.billing.stripe_api import BillingUnavailable
from kamiyo.errors import Conflict, InvalidInput, KamiyoError, NotFound, Unavailable
from kamiyo.submissions.service import DailyCapReached


def test_a_status_alone_brings_its_standard_code() -> None:
    class Gone(KamiyoError):
        status = 404

    class Odd(KamiyoError):
        status = 418  # no standard code: the base class's stays

    assert (Gone.code, Odd.code) == ("not_found", "bad_request")
    assert [(e.status, e.code) for e in (NotFound, InvalidInput, Conflict, Unavailable, DailyCapReached)] == [
        (404, "not_found"),
        (422, "invalid"),
        (409, "conflict"),
        (503, "unavailable"),
        (429, "rate_limited"),
    ]


def test_a_named_code_is_kept_and_inherited() -> None:
    class StillBilling(BillingUnavailable):
        pass

    class Refused(KamiyoError):
        status = 403
        code = "limit_reached"

    assert (BillingUnavailable.status, BillingUnavailable.code) == (503, "billing_unavailable")
    assert StillBilling.code == "billing_unavailable"
    assert Refused.code == "limit_reached"
    raised = NotFound("no exploit 7", code="exploit_missing")
    assert (raised.status, raised.code, NotFound.code) == (404, "exploit_missing", "not_found")
