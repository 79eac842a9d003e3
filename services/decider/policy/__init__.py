"""The decider's pure core: sample, policy view, state and time in; intents and state changes out.

Nothing in this package does I/O or asks a clock; `tests/unit/test_decider_purity.py`
enforces that rule on every module here.
"""

from services.decider.policy.decide import Decision, decide
from services.decider.policy.pause import PauseEntry, Pauses
from services.decider.policy.state import ContainerState, decode_state, encode_state
from services.decider.policy.view import PolicyView

__all__ = [
    "ContainerState",
    "Decision",
    "PauseEntry",
    "Pauses",
    "PolicyView",
    "decide",
    "decode_state",
    "encode_state",
]
