"""Cell and stack specifications: gate counts, parameter names and shapes, initialisation.

Letters used throughout: T time steps, B batch, I input features, H hidden units, G gates per cell,
L layers, D directions (1 or 2).

Gate order and equations follow PyTorch exactly, so weights move between the two unchanged:

* ``rnn_tanh`` / ``rnn_relu`` (G = 1): h' = act(W_ih x + b_ih + W_hh h + b_hh)
* ``lstm`` (G = 4, order i, f, g, o):
  i, f, o = sigmoid(.), g = tanh(.); c' = f * c + i * g; h' = o * tanh(c')
* ``gru`` (G = 3, order r, z, n):
  r = sigmoid(W_ir x + b_ir + W_hr h + b_hr); z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
SUPPORTED_DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class StackSpec:
    """Everything an executor needs to know about a stack of recurrent layers (hashable: plan-cache key)."""

    cell: str  # one of GATES
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    dtype: str = "float32"  # numpy dtype name, so the spec stays hashable and printable

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def has_cell_state(self) -> bool:
        return self.cell == "lstm"

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size * self.directions

    def suffix(self, layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch parameter names in PyTorch's order, with their shapes."""
        G, H = self.gates, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            for d in range(self.directions):
                s = self.suffix(layer, d)
                shapes["weight_ih" + s] = (G * H, self.layer_input_size(layer))
                shapes["weight_hh" + s] = (G * H, H)
                if self.bias:
                    shapes["bias_ih" + s] = (G * H,)
                    shapes["bias_hh" + s] = (G * H,)
        return shapes

    def layer_params(self, params: dict[str, np.ndarray], layer: int, direction: int):
        """(W_ih, W_hh, b_ih, b_hh) of one layer and direction; biases are None when bias=False."""
        s = self.suffix(layer, direction)
        return (
            params["weight_ih" + s],
            params["weight_hh" + s],
            params.get("bias_ih" + s),
            params.get("bias_hh" + s),
        )


def init_params(spec: StackSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """PyTorch's default: every parameter uniform in (-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / np.sqrt(spec.hidden_size) if spec.hidden_size > 0 else 0.0
    return {
        name: rng.uniform(-bound, bound, size=shape).astype(spec.np_dtype)
        for name, shape in spec.param_shapes().items()
    }
