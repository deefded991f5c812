"""The ONNX ops a plan may use: ``(domain, op_type)`` pairs, ``"ai.onnx"`` for the default domain.

Why an allow-list: a Node hosts plans uploaded by researchers and serves them to devices; an op
outside this list is either not implemented by every runtime Fedgrid targets (ONNX Runtime on
CPU, WASM and mobile) or does I/O/randomness a training step has no business doing. The list is
what the zoo compiles to plus close relatives that common layers produce.
"""

OPSET_VERSION = 18

_DEFAULT_DOMAIN_OPS = {
    # arithmetic and elementwise
    "Abs", "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Reciprocal", "Exp", "Log",
    "Max", "Min", "Sum", "Mean", "Clip", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus",
    "Elu", "Selu", "Gelu", "Erf", "Sign", "Floor", "Ceil", "Round", "Mod", "PRelu",
    "HardSigmoid", "HardSwish", "Softsign",
    # comparison and logic
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Not", "And", "Or", "Xor",
    "Where", "IsNaN", "IsInf",
    # linear algebra and neural-network layers
    "MatMul", "Gemm", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Softmax", "LogSoftmax", "Dropout", "NegativeLogLikelihoodLoss",
    "SoftmaxCrossEntropyLoss", "LayerNormalization",
    # reductions and indexing
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSumExp",
    "ReduceSumSquare", "ArgMax", "ArgMin", "Gather", "GatherElements", "GatherND",
    "ScatterElements", "ScatterND", "OneHot", "TopK",
    # shape and data movement
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice",
    "Expand", "Tile", "Pad", "Shape", "Size", "Identity", "Cast", "CastLike", "Constant",
    "ConstantOfShape", "Range", "Trilu",
}

ALLOWED_OPS: frozenset[tuple[str, str]] = frozenset(("ai.onnx", op) for op in _DEFAULT_DOMAIN_OPS)

# The averaging plan (iterative mean) needs nothing but arithmetic.
AVERAGING_OPS: frozenset[tuple[str, str]] = frozenset(
    ("ai.onnx", op) for op in ("Add", "Sub", "Mul", "Div", "Cast", "Identity", "Constant")
)
