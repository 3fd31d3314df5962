"""ai-traiding: take a trading strategy safely from idea to live trading on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ai-traiding")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
