"""`KAMIYO_SMTP_URL` becomes the connection arguments `aiosmtplib.send` takes, under its own names."""

import inspect

import aiosmtplib
import pytest

from kamiyo.delivery.channels.email import parse_smtp_url


def test_each_scheme_gives_its_port_and_tls() -> None:
    assert parse_smtp_url("smtp://mail.example.org") == {
        "hostname": "mail.example.org",
        "port": 587,
        "username": None,
        "password": None,
        "use_tls": False,
        "start_tls": None,
    }
    implicit = parse_smtp_url("smtps://a%40b:p%3Ass@mail.example.org")
    assert (implicit["port"], implicit["use_tls"], implicit["start_tls"]) == (465, True, False)
    assert (implicit["username"], implicit["password"]) == ("a@b", "p:ss")
    required = parse_smtp_url("smtp+starttls://mail.example.org:2525")
    assert (required["port"], required["use_tls"], required["start_tls"]) == (2525, False, True)


def test_every_argument_is_one_aiosmtplib_send_takes() -> None:
    assert set(parse_smtp_url("smtp://h")) <= set(inspect.signature(aiosmtplib.send).parameters)


@pytest.mark.parametrize("url", ["http://mail.example.org", "smtp:///no-host"])
def test_not_an_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="KAMIYO_SMTP_URL"):
        parse_smtp_url(url)
