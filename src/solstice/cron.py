"""Schedules' cron expressions and time zones: checked once, and the due times they give."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter

# What names a schedule within its plugin.
SCHEDULE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_TIMEOUT_S = 60
MAX_TIMEOUT_S = 24 * 3600
MAX_CRON_LENGTH = 200
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class CronError(ValueError):
    """A cron expression, time zone or schedule id that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    """A checked cron expression read in a time zone."""

    expression: str
    timezone: str

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment`, in UTC."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        found = croniter(self.expression, local, second_at_beginning=True).get_next(datetime)
        return found.astimezone(UTC)


def check_schedule_id(value: str) -> str:
    """`value` if it can name a schedule, else CronError."""
    if not SCHEDULE_ID.fullmatch(value):
        raise CronError(
            f"schedule id {value!r} is not valid; use 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_cron(expression: str, timezone: str = DEFAULT_TIMEZONE) -> Cron:
    """The expression and zone checked: five fields, six with seconds first, or a macro."""
    expression = " ".join(expression.split())
    timezone = timezone or DEFAULT_TIMEZONE
    if len(expression) > MAX_CRON_LENGTH:
        raise CronError(f"cron of {len(expression)} characters is too long; at most {MAX_CRON_LENGTH}")
    fields = expression.split(" ")
    # croniter's R (random) and H (hashed) values: a new time at every reading, not a schedule.
    for part in (piece for field in fields for piece in re.split(r"[,/-]", field)):
        if part.upper() in ("R", "H") or part.upper().startswith(("R(", "H(")):
            raise CronError(f"cron {expression!r} uses {part!r}, a random value; give fixed values")
    if expression.startswith("@") and expression.lower() not in _MACROS:
        raise CronError(f"cron {expression!r} is not a known macro; use one of {', '.join(_MACROS)}")
    if expression.lower() not in _MACROS and len(fields) not in (5, 6):
        raise CronError(
            f"cron {expression!r} has {len(fields)} fields; give five (minute hour day month weekday), "
            "six with seconds first, or a macro such as @hourly"
        )
    try:
        croniter(expression, datetime.now(UTC), second_at_beginning=True).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise CronError(f"cron {expression!r} is not valid ({exc}); check each field's range") from None
    if timezone not in _zones():
        raise CronError(
            f"timezone {timezone!r} is not a known IANA time zone; use a name such as UTC or Europe/Paris"
        ) from None
    return Cron(expression, timezone)


@cache
def _zones() -> frozenset[str]:
    # Only IANA names: no directories, no host-dependent "localtime", no "posix/" or "right/" copies.
    return frozenset((available_timezones() - {"localtime"}) | {DEFAULT_TIMEZONE})
