"""btcore: Block-Term (BT) and Tensor-Train (TT) matrix formats for compact layers.

Public API (see each module for details):

* shapes: :func:`factorize`, :func:`check_modes`
* formats: :class:`DenseSpec`, :class:`TTSpec`, :class:`BTSpec`, :func:`tucker_spec`, :func:`cp_spec`,
  :func:`dense_params`, :func:`tt_params`, :func:`bt_params`, :func:`tucker_params`, :func:`cp_params`
* tensors: :class:`BTMatrix`, :class:`TTMatrix`
* contract: :func:`matmul`, :func:`plan_matmul`, :func:`plan_reconstruct`
"""

from .shapes import MAX_MODE, check_modes, factorize, nearest_factorizable, prime_factors
from .formats import (
    BTSpec, DenseSpec, TTSpec, bt_params, cp_params, cp_spec, dense_params, dtype_bytes, format_bytes,
    tt_params, tucker_params, tucker_spec, describe, summary_row, param_sweep, max_uniform_rank,
)
from .contract import ContractionPlan, Step, matmul, plan_matmul, plan_reconstruct
from .tensors import BTMatrix, TTMatrix, available_memory, check_allocation

# -- modules added by later issues register their public names below --
from .layers import BTLinear, TTLinear; from .rnn import GRU, GRUCell, LSTM, LSTMCell, ClassifierConfig, SequenceClassifier, build_classifier, ucf11_config  # noqa: E702
from .decompose import FitInfo, budget_candidates, compare_formats, fit_bt, fit_cp, fit_tt, fit_tucker, relative_error; from . import targets  # noqa: E702,E501
from .data import ACTION_NAMES, ClipSet, SyntheticActions, load_clip_folder  # btcore.train is imported on use (python -m btcore.train)

__version__ = "0.1.0"
