"""btcore: Block-Term (BT), Tensor-Train (TT) and Tensor Ring (TR) matrix formats for compact layers.

Public API, each name re-exported here from its home module (see each module for details):

* shapes: :func:`factorize`, :func:`check_modes`, :func:`nearest_factorizable`, :func:`prime_factors`
* formats: the registry :data:`FORMATS`; :class:`DenseSpec`, :class:`TTSpec`, :class:`BTSpec`, :class:`TRSpec`,
  :func:`tucker_spec`, :func:`cp_spec`, :func:`dense_params`, :func:`tt_params`, :func:`bt_params`,
  :func:`tucker_params`, :func:`cp_params`, :func:`tr_params`
* memory: :func:`dtype_bytes`, :func:`format_bytes`, :func:`available_memory`, :func:`check_allocation`;
  indices: the einsum index alphabet; plan: :class:`ContractionPlan`, :class:`Step`, :func:`plan_reconstruct`
  (the FLOP-optimal path the specs count with)
* matrices: :class:`BTMatrix`, :class:`TTMatrix`; ring: :class:`TRMatrix` (and TR-SVD)
* contract: :func:`matmul`, :func:`plan_matmul` and :func:`planner_choice` (the scheme the timed planner runs)
* layers: :class:`BTLinear`, :class:`TTLinear`; rnn: LSTM/GRU cells and layers;
  classifier: :class:`ClassifierConfig`, :class:`SequenceClassifier`, :func:`ucf11_config`;
  compress: :func:`compress` (a trained model's dense maps refitted as TT/BT layers)
* decompose: :func:`fit_bt`, :func:`fit_tt`, :func:`fit_tucker`, :func:`fit_cp`, :func:`relative_error`;
  :func:`suggest_formats` (format and rank advisor) and :func:`recommended`
* target_matrices: :func:`make_target` and the generators of target matrices; images: the shipped
  target images and PNG I/O; uploads: :func:`load_uploaded`, safe loading of a user's ``.npy`` / ``.pt``
* data: :class:`ClipSet`, :class:`SyntheticActions` (synthetic action clips); clips:
  :func:`load_clip_folder` (UCF11-style clip folders under a data root)
* checks: argument checks shared by the modules above (tensors, dropout, matrices, devices);
  array_files: ``.npy`` / ``.npz`` reading with the declared size checked before the data
* train (package, ``python -m btcore.train``): trainer, comparisons, checkpoints, CLI, DDP
"""

from .shapes import MAX_MODE, check_modes, factorize, nearest_factorizable, prime_factors
from .formats import (
    FORMATS, BTSpec, DenseSpec, TRSpec, TTSpec, bt_params, cp_params, cp_spec, dense_params, tr_params,
    tt_params, tucker_params, tucker_spec, describe, summary_row, param_sweep, max_uniform_rank, tt_rank_caps,
)
from .memory import available_memory, check_allocation, dtype_bytes, format_bytes
from .plan import ContractionPlan, Step, plan_reconstruct
from .contract import PlannerChoice, matmul, plan_matmul, planner_choice
from .matrices import BTMatrix, TTMatrix
from .ring import TRMatrix

from .layers import BTLinear, TRLinear, TTLinear
from .decompose.tr import fit_tr
from .rnn import GRU, LSTM, GRUCell, LSTMCell
from .classifier import ClassifierConfig, SequenceClassifier, ucf11_config
from .compress import compress
from .decompose import (
    FitInfo, budget_candidates, compare_formats, fit_bt, fit_cp, fit_tt, fit_tucker, interleave, recommended,
    relative_error, suggest_formats,
)
from .target_matrices import TARGETS, make_target
from .uploads import load_uploaded
from .data import ACTION_NAMES, ClipSet, SyntheticActions
from .clips import load_clip_folder

from . import train

__version__ = "0.1.0"
