"""A Binance spot REST exchange simulator that the real ccxt client runs against unmodified.

Python API::

    async with run_simulator(SimulatorConfig(keys=[ApiKeyConfig(key="k", secret="s")])) as sim:
        exchange = ccxt.async_support.binance(ccxt_config(sim.base_url, "k", "s"))
        ...
        sim.stats(); sim.set_faults(error_rate=0.1); sim.add_fault_rule(action="hang_after")
"""

from traiding_simulator.config import ApiKeyConfig, DataSource, FaultConfig, FaultRule, SimulatorConfig
from traiding_simulator.server import Simulator, ThreadedSimulator, run_simulator, start_simulator_thread
from traiding_simulator.urls import ccxt_config, ccxt_options, client_urls

__all__ = [
    "ApiKeyConfig",
    "DataSource",
    "FaultConfig",
    "FaultRule",
    "Simulator",
    "SimulatorConfig",
    "ThreadedSimulator",
    "ccxt_config",
    "ccxt_options",
    "client_urls",
    "run_simulator",
    "start_simulator_thread",
]
