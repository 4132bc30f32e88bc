"""graphrnn: RNN, LSTM and GRU on NumPy arrays, run as a static graph or a dynamic Numba loop."""

from graphrnn._version import __version__
from graphrnn.modules import GRU, LSTM, RNN
from graphrnn.threads import set_num_threads

__all__ = ["__version__", "RNN", "LSTM", "GRU", "set_num_threads"]
