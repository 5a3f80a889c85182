"""The OKX error tree, and a sentence a person understands for each code we meet.

    OkxError                      code, msg (OKX's own), explanation (ours)
    ├── OkxRejectedError          OKX said no; asking again cannot help
    │   ├── OkxAuthError          key, signature, passphrase, timestamp
    │   │   └── OkxClockError     50102: our clock is off even after re-syncing
    │   ├── OkxEnvironmentError   50101: demo key on live or live key on demo
    │   ├── OkxPermissionError    key lacks Trade, IP not whitelisted
    │   ├── OkxAccountModeError   account is not in Spot mode with borrowing
    │   └── OkxRequestError       a parameter OKX did not accept, anything else
    ├── OkxRateLimitError         50011 / HTTP 429: retried with backoff first
    ├── OkxUnavailableError       any HTTP 5xx (whatever its body), 50001/50004/50013,
    │                             timeouts, connection errors: retried first
    └── OkxProtocolError          an answer the bot can't read, or a request it can't send

`retryable` tells the client which families are worth another attempt.

Two audiences: `str(exc)` and `explanation` are for the people using the bot (traders),
so they never name environment variables or exception classes; `operator_hint` says what
whoever runs the bot can do about it, and `msg` keeps the detail (OKX's own message, or
for the client's own codes what went wrong underneath). Both belong in the log.

Besides OKX's numeric codes the client uses its own: "network" (no answer at all),
"http-NNN" (an HTTP 5xx whatever its body, or another status without OKX's envelope),
"protocol" (an answer without the fields OKX documents), "undecodable" (a body that
could not even be decoded, e.g. broken gzip) and "unsendable" (a request that could not
be formed: an unusable base URL, credentials that can't go in a header).
"""

from __future__ import annotations

REGION_CAUSE = (
    " A likely cause: the account was opened on my.okx.com (EEA) or app.okx.com (US/AU), "
    "which the bot must reach through eea.okx.com or us.okx.com; ask whoever runs the bot."
)
REGION_HINT = (
    "If the account was opened on my.okx.com (EEA) or app.okx.com (US/AU), set "
    "OKX_BASE_URL to https://eea.okx.com or https://us.okx.com."
)

EXPLANATIONS: dict[str, str] = {
    "network": "OKX could not be reached (network error).",
    "protocol": "OKX gave an answer the bot could not read.",
    "undecodable": "OKX's answer arrived garbled, so the bot could not read it.",
    "unsendable": "The bot could not send the request to OKX: its connection to OKX is set "
    "up wrongly; ask whoever runs the bot.",
    "50001": "OKX says its service is temporarily unavailable.",
    "50004": "OKX timed out answering.",
    "50011": "OKX's rate limit was reached: too many requests in a short time.",
    "busy": "The bot is already sending OKX as many requests as OKX allows; try again in "
    "a moment.",
    "50013": "OKX says its system is busy.",
    "50014": "A required parameter was missing from the request to OKX.",
    "50026": "OKX reported a system error.",
    "50030": "The API key has no permission to use this endpoint.",
    "50100": "The API key is frozen; contact OKX support.",
    "50101": "The API key does not match the demo/live environment "
    "(a demo-trading key used on live, or a live key used on demo).",
    "50102": "OKX rejected the request timestamp; this machine's clock is off.",
    "50103": "The request reached OKX without an API key.",
    "50104": "The request reached OKX without a passphrase.",
    "50105": "The API passphrase is wrong.",
    "50106": "The request reached OKX without a signature.",
    "50107": "The request reached OKX without a timestamp.",
    "50110": "This machine's IP address is not on the API key's IP whitelist.",
    "50111": "OKX does not recognise the API key." + REGION_CAUSE,
    "50112": "OKX could not read the request timestamp.",
    "50113": "OKX rejected the signature; the API secret is probably wrong.",
    "50114": "OKX rejected the authorization of the request.",
    "50119": "The API key doesn't exist on this OKX site." + REGION_CAUSE,
    "50120": "The API key lacks the Trade permission needed to change auto repay.",
    "51000": "OKX did not accept a parameter of the request.",
    "51010": "This account is not in Spot mode, so auto repay cannot be set.",
    "59000": "OKX refused the setting because the account has open positions or orders.",
    "59001": "OKX refused the setting because the account has borrowings.",
}

OPERATOR_HINTS: dict[str, str] = {
    "50111": REGION_HINT,
    "50119": REGION_HINT,
    "unsendable": "Check OKX_BASE_URL, and that the account's API key and passphrase hold "
    "no line breaks or other control characters.",
}


class OkxError(Exception):
    """Anything that went wrong talking to OKX; `code` and `msg` are OKX's own (or, for
    "network", "http-NNN" and "protocol", the client's)."""

    retryable = False

    def __init__(self, code: str, msg: str = "") -> None:
        self.code = code
        self.msg = msg
        super().__init__(self.explanation)

    @property
    def explanation(self) -> str:
        """What went wrong, in words for the people using the bot."""
        known = EXPLANATIONS.get(self.code)
        if known:
            return known
        if self.code.startswith("http-5"):
            return f"OKX had a server error (HTTP {self.code[5:]})."
        if self.code.startswith("http-"):
            return f"OKX gave an answer the bot could not read (HTTP {self.code[5:]})."
        return self.msg or "OKX returned an error."

    @property
    def operator_hint(self) -> str:
        """What whoever runs the bot can do about it (for the log); often nothing."""
        return OPERATOR_HINTS.get(self.code, "")

    def __str__(self) -> str:
        if not self.code.isdigit():  # the client's own codes: the words say it all
            return self.explanation
        return f"{self.explanation.rstrip('.')} (OKX code {self.code})."


class OkxWithdrawnError(OkxError):
    """The caller took the request back before it was sent (its `proceed` check said
    no): nothing reached OKX."""


class OkxRejectedError(OkxError):
    """OKX understood the request and refused it; repeating it will not help."""


class OkxAuthError(OkxRejectedError):
    """The key, secret, passphrase or timestamp was not accepted."""


class OkxClockError(OkxAuthError):
    """The timestamp stayed outside OKX's window even after re-syncing the clock."""


class OkxEnvironmentError(OkxRejectedError):
    """A demo-trading key was used on live, or a live key on demo."""


class OkxPermissionError(OkxRejectedError):
    """The key may not do this (missing Trade permission, IP not whitelisted)."""


class OkxAccountModeError(OkxRejectedError):
    """The account is not in a mode where auto repay applies."""


class OkxRequestError(OkxRejectedError):
    """OKX did not accept the request as sent."""


class OkxRateLimitError(OkxError):
    """OKX asked us to slow down."""

    retryable = True


class OkxUnavailableError(OkxError):
    """OKX could not be reached or could not answer; worth another attempt."""

    retryable = True


class OkxProtocolError(OkxError):
    """The bot and OKX did not understand each other: an answer that is not the JSON OKX
    documents (or can't be decoded at all), or a request that could not be formed."""


_FAMILIES: dict[str, type[OkxError]] = {
    **dict.fromkeys(("50100", "50103", "50104", "50105", "50106", "50107"), OkxAuthError),
    **dict.fromkeys(("50111", "50112", "50113", "50114", "50119"), OkxAuthError),
    "50102": OkxClockError,
    "50101": OkxEnvironmentError,
    **dict.fromkeys(("50030", "50110", "50120"), OkxPermissionError),
    **dict.fromkeys(("51010", "59000", "59001"), OkxAccountModeError),
    "50011": OkxRateLimitError,
    **dict.fromkeys(("50001", "50004", "50013", "50026"), OkxUnavailableError),
}


def outcome_uncertain(code: str) -> bool:
    """For an error code the client gave up on: might the request have gone through?

    True for outages, timeouts and rate limits (the families the client retries), for
    the client's own "network" and "http-5xx" codes, and for "undecodable" (an answer
    came, so the request reached OKX); False for refusals.
    """
    if code in ("network", "undecodable") or code.startswith("http-5"):
        return True
    return _FAMILIES.get(code, OkxRequestError).retryable


def error_for(code: str, msg: str) -> OkxError:
    """The typed error for an OKX error code; unknown codes are permanent refusals."""
    family = _FAMILIES.get(code, OkxRequestError)
    return family(code, msg)
