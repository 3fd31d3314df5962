"""Where runs may connect, from the environment (or a `.env` file): the one place endpoints come from.

A run's spec never carries an address. `spec.exchange.simulator.name` picks one of the simulators configured
here by name (`TRAIDING_SIMULATORS`, a JSON object of names and base URLs; a run that names none uses the one
named `default`), and `spec.exchange.id` must be one of the allowed exchanges (`TRAIDING_EXCHANGES`), whose
hosts are ccxt's own. So a run's author cannot send the API key a run signs with, or its orders, to a server
of their choosing, nor serve it fake candles to pass the gates.

Settings are checked when a process starts: a bad value is a `UserError` naming the variable.
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from pydantic import AnyHttpUrl, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from traiding.errors import UserError

ENV_PREFIX = "TRAIDING_"
DEFAULT_SIMULATOR = "default"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

SimulatorName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
ExchangeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=40)]


class EndpointNotAllowed(Exception):
    """The run names an endpoint the configuration does not allow; nothing was sent to it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class EndpointSettings(BaseSettings):
    """The endpoints runs may use (see module doc)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    simulators: dict[SimulatorName, AnyHttpUrl] = {}
    exchanges: list[ExchangeId] = ["binance"]

    def simulator_url(self, name: str | None) -> str:
        """The base URL of the simulator `name` (None: the default one); `EndpointNotAllowed` if there is none."""
        wanted = name or DEFAULT_SIMULATOR
        url = self.simulators.get(wanted)
        if url is not None:
            return str(url)
        configured = ", ".join(sorted(self.simulators)) or "none"
        if name:
            message = (
                f"spec.exchange.simulator.name {name!r} is not a simulator this installation allows "
                f"(configured: {configured}; {ENV_PREFIX}SIMULATORS)"
            )
            raise EndpointNotAllowed("SimulatorNotAllowed", message)
        raise EndpointNotAllowed(
            "SimulatorNotConfigured",
            f"the run uses the exchange simulator and names none, and no simulator is configured as "
            f"{DEFAULT_SIMULATOR!r} (configured: {configured}; {ENV_PREFIX}SIMULATORS)",
        )

    def check_exchange(self, exchange_id: str) -> None:
        """A run on a real exchange may only use an allowed one (a simulator run's id only picks ccxt's dialect)."""
        if exchange_id not in self.exchanges:
            raise EndpointNotAllowed(
                "ExchangeNotAllowed",
                f"spec.exchange.id {exchange_id!r} is not an exchange this installation allows "
                f"(allowed: {', '.join(self.exchanges) or 'none'}; {ENV_PREFIX}EXCHANGES)",
            )


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """`cls()` from the environment, a bad value raised as a `UserError` naming its variable."""
    try:
        return cls()
    except ValidationError as error:
        raise UserError(settings_error_message(error, cls)) from None
    except SettingsError as error:  # a value that is not JSON where JSON is expected
        field = re.search(r'field "([^"]+)"', str(error))
        name = f"{_prefix(cls)}{field.group(1).upper()}" if field else "a setting"
        raise UserError(f"invalid setting: {name}: not valid JSON") from None


def settings_error_message(error: ValidationError, cls: type[BaseSettings]) -> str:
    prefix = _prefix(cls)
    problems = []
    for item in error.errors():
        path = [str(part) for part in item["loc"] if part != "[key]"]
        if not path:  # a rule over several settings: its message names them
            problems.append(_plain(item["msg"]))
            continue
        field, *rest = path
        where = f"{prefix}{field.upper()}" + "".join(f"[{part!r}]" for part in rest)
        problems.append(f"{where}: {_plain(item['msg'])}")
    return "invalid setting: " + "; ".join(problems)


def _prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", ""))


def _plain(message: str) -> str:
    return re.sub(r"^Value error, ", "", message)
