"""gonogo's built-in fault proxy: TCP proxies with toxics, driven by a Toxiproxy-compatible HTTP API."""

from gonogo.faults.addresses import AddressError
from gonogo.faults.proxy import FaultProxy
from gonogo.faults.toxics import TOXIC_ATTRIBUTES, Toxic, ToxicError

__all__ = ["TOXIC_ATTRIBUTES", "AddressError", "FaultProxy", "Toxic", "ToxicError"]
