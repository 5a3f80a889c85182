"""Typed views of what OKX answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from okx.errors import OkxProtocolError

ACCOUNT_MODES = {
    "1": "Spot mode",
    "2": "Spot and futures mode",
    "3": "Multi-currency margin mode",
    "4": "Portfolio margin mode",
}


@dataclass(frozen=True)
class AccountConfig:
    """The parts of GET /api/v5/account/config this bot needs."""

    uid: str
    acct_lv: str
    enable_spot_borrow: bool
    auto_repay: bool
    perm: tuple[str, ...]
    label: str

    @property
    def mode_name(self) -> str:
        return ACCOUNT_MODES.get(self.acct_lv, f"account level {self.acct_lv}")

    @property
    def supports_auto_repay(self) -> bool:
        """Auto repay only applies to Spot mode with borrowing enabled."""
        return self.acct_lv == "1" and self.enable_spot_borrow

    @classmethod
    def from_okx(cls, item: dict[str, Any]) -> AccountConfig:
        try:
            return cls(
                uid=as_id(item["uid"]),
                acct_lv=as_id(item["acctLv"]),
                enable_spot_borrow=as_bool(item.get("enableSpotBorrow", False)),
                auto_repay=as_bool(item.get("spotBorrowAutoRepay", False)),
                perm=tuple(p for p in str(item.get("perm", "")).split(",") if p),
                label=str(item.get("label", "")),
            )
        except (KeyError, ValueError) as exc:
            raise OkxProtocolError("protocol", f"unexpected account config: {exc}") from exc


def as_bool(value: object) -> bool:
    """OKX sends booleans, but some fields have been seen as "true"/"false" strings."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError(f"not a boolean: {value!r}")


def as_id(value: object) -> str:
    """An identifier OKX sends as a string (a number would do as well); never empty."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    raise ValueError(f"not an identifier: {type(value).__name__}")
