"""graphrnn: RNN, LSTM and GRU on NumPy arrays, run as a static graph or a dynamic Numba loop."""

from graphrnn._version import __version__
from graphrnn.io import Checkpoint, load, load_checkpoint, save
from graphrnn.layers import Embedding, Linear
from graphrnn.losses import cross_entropy, log_softmax, mse_loss, softmax
from graphrnn.modules import GRU, LSTM, RNN
from graphrnn.optim import SGD, Adam, clip_grad_norm
from graphrnn.threads import set_num_threads

__all__ = [
    "__version__", "RNN", "LSTM", "GRU", "Linear", "Embedding", "cross_entropy", "mse_loss", "log_softmax",
    "softmax", "SGD", "Adam", "clip_grad_norm", "save", "load", "load_checkpoint", "Checkpoint",
    "set_num_threads",
]
