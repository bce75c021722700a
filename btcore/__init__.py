"""btcore: Block-Term (BT) and Tensor-Train (TT) matrix formats for compact layers.

Public API (see each module for details):

* shapes: :func:`factorize`, :func:`check_modes`
* formats: :class:`DenseSpec`, :class:`TTSpec`, :class:`BTSpec`, :func:`tucker_spec`, :func:`cp_spec`,
  :func:`dense_params`, :func:`tt_params`, :func:`bt_params`, :func:`tucker_params`, :func:`cp_params`
* memory: :func:`dtype_bytes`, :func:`format_bytes`, :func:`available_memory`, :func:`check_allocation`;
  indices: the einsum index alphabet; plan: :class:`ContractionPlan`, :class:`Step`, :func:`plan_reconstruct`
  (the FLOP-optimal path the specs count with)
* matrices: :class:`BTMatrix`, :class:`TTMatrix`
* contract: :func:`matmul`, :func:`plan_matmul` and :func:`planner_choice` (the scheme the timed planner runs)
* layers: :class:`BTLinear`, :class:`TTLinear`; rnn: LSTM/GRU cells and layers, :class:`SequenceClassifier`
* decompose: :func:`fit_bt`, :func:`fit_tt`, :func:`fit_tucker`, :func:`fit_cp`, :func:`relative_error`;
  :func:`suggest_formats` (format and rank advisor) and :func:`recommended`
* targets (module): target matrices and safe upload loading; data: synthetic action clips
* train (package, ``python -m btcore.train``): trainer, comparisons, checkpoints, CLI, DDP
"""

from .shapes import MAX_MODE, check_modes, factorize, nearest_factorizable, prime_factors
from .formats import (
    BTSpec, DenseSpec, TTSpec, bt_params, cp_params, cp_spec, dense_params,
    tt_params, tucker_params, tucker_spec, describe, summary_row, param_sweep, max_uniform_rank, tt_rank_caps,
)
from .memory import available_memory, check_allocation, dtype_bytes, format_bytes
from .plan import ContractionPlan, Step, plan_reconstruct
from .contract import PlannerChoice, matmul, plan_matmul, planner_choice
from .matrices import BTMatrix, TTMatrix

from .layers import BTLinear, TTLinear
from .rnn import GRU, LSTM, ClassifierConfig, GRUCell, LSTMCell, SequenceClassifier, ucf11_config
from .decompose import (
    FitInfo, budget_candidates, compare_formats, fit_bt, fit_cp, fit_tt, fit_tucker, interleave, recommended,
    relative_error, suggest_formats,
)
from . import targets
from .data import ACTION_NAMES, ClipSet, SyntheticActions, load_clip_folder

from . import train

__version__ = "0.1.0"
