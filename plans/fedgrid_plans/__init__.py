"""Fedgrid training plans: the plan file format, validation and the safetensors codec.

Importing this package needs only numpy and onnx (what a Node has). The compiler
(:mod:`fedgrid_plans.compiler`, :mod:`fedgrid_plans.zoo`) imports torch and the executor
(:mod:`fedgrid_plans.executor`) imports onnxruntime, each only when imported itself.
"""

from fedgrid_plans.plan_file import FORMAT_VERSION, Plan, PlanFormatError
from fedgrid_plans.tensors import TensorFormatError, decode, decode_metadata, encode
from fedgrid_plans.validation import PlanValidationError, validate_plan

__all__ = [
    "FORMAT_VERSION",
    "Plan",
    "PlanFormatError",
    "PlanValidationError",
    "TensorFormatError",
    "decode",
    "decode_metadata",
    "encode",
    "validate_plan",
]
