"""Loads and stores that tell LLVM which rows cannot overlap, so vectorised loops need no overlap checks.

A loop that writes output rows and reads input rows of the same arrays (``H`` holds every layer's activations)
can only be vectorised if the rows do not overlap; LLVM cannot prove that, so it emits a runtime check of every
written row against every other row before each loop, which costs as much as a short loop itself
(bench/NOTES.md, change 18). ``load(row, s, scope)`` and ``store(row, s, value, scope)`` are plain element accesses that carry
LLVM's scoped no-alias metadata: an access in one scope never aliases an access in another, so the checks go.

The scopes are a promise the caller keeps: rows accessed under different scopes are different rows. The
products that used them first are SIMD kernels now (``products.py``: no vectoriser, so no checks); the
engine's element-wise loops that read one row and write another (the derivative pass after the delta) use
``IN`` and ``OUT0``. ``OUT1`` is a second output scope for loops that write two rows.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

IN, OUT0, OUT1 = 0, 1, 2
_NAMES = ("in", "out0", "out1")


def _metadata(module, scope):
    """The (alias.scope, noalias) metadata nodes of ``scope`` in ``module`` (uniqued by content)."""
    domain = module.add_metadata([ir.MetaDataString(module, "fastmlp.rows")])
    nodes = [module.add_metadata([ir.MetaDataString(module, "fastmlp.noalias." + n), domain]) for n in _NAMES]
    mine = module.add_metadata([nodes[scope]])
    others = module.add_metadata([nodes[i] for i in range(len(_NAMES)) if i != scope])
    return mine, others


def _scope_of(scope):
    if not isinstance(scope, types.IntegerLiteral) or scope.literal_value not in range(len(_NAMES)):
        raise TypeError("the scope must be one of the constants noalias.IN, noalias.OUT0, noalias.OUT1")
    return scope.literal_value


def _element_pointer(context, builder, aryty, ary, index):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, [index], wraparound=False)


def _tag(builder, instruction, scope):
    mine, others = _metadata(builder.module, scope)
    instruction.set_metadata("alias.scope", mine)
    instruction.set_metadata("noalias", others)


@intrinsic(prefer_literal=True)
def load(typingctx, row, index, scope):
    """``row[index]`` (a 1-D array, no bounds check), marked as an access in ``scope``."""
    if not (isinstance(row, types.Array) and row.ndim == 1 and isinstance(index, types.Integer)):
        return None
    code = _scope_of(scope)

    def codegen(context, builder, sig, args):
        value = builder.load(_element_pointer(context, builder, sig.args[0], args[0], args[1]))
        _tag(builder, value, code)
        return value
    return row.dtype(row, index, scope), codegen


@intrinsic(prefer_literal=True)
def store(typingctx, row, index, value, scope):
    """``row[index] = value`` (a 1-D array, no bounds check), marked as an access in ``scope``."""
    if not (isinstance(row, types.Array) and row.ndim == 1 and isinstance(index, types.Integer)
            and value == row.dtype):
        return None
    code = _scope_of(scope)

    def codegen(context, builder, sig, args):
        instruction = builder.store(args[2], _element_pointer(context, builder, sig.args[0], args[0], args[1]))
        _tag(builder, instruction, code)
        return context.get_dummy_value()
    return types.void(row, index, value, scope), codegen
