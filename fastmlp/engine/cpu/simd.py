"""A SIMD vector type for numba, so that products can be register-blocked by hand.

LLVM vectorises only innermost loops, and numba leaves its SLP vectoriser off (numba #8705), so a product
written with scalars is vectorised along one loop and streams rows through memory: a pass of two units over
eight inputs spills its weights and reaches a small share of a core's peak (bench/NOTES.md, "What bounds W2"). With a
vector type the products can be written like a BLAS micro-kernel instead: a tile of accumulators held in
registers for all of a sum's terms, each loaded input vector used by several units, the weights broadcast
from memory. ``Vec`` is an LLVM ``<W x float>`` / ``<W x double>`` of 32 to 128 bytes.

Three widths, each a namespace of the functions that make vectors (``load``, ``broadcast``, ``broadcast_flat``,
``splat``, ``transpose_block``; the others take any ``Vec``, and ``like`` makes a constant of any ``Vec``'s type):

* ``fixed``: 64 bytes on every machine (LLVM splits it into two registers where vectors are 32 bytes), for
  kernels whose results depend on the width: a sum accumulated lane by lane and then across the lanes (the
  weight gradient along the samples, the bias sums) would get other bits with other lanes, so its width is not
  taken from the host. 64 rather than 32: a whole AVX-512 register, half the instructions there, and no
  slower where it takes two (bench/NOTES.md, change 29).
* ``wide``: the host's widest vector (64 bytes with AVX-512, else 32; ``config.VECTOR_BYTES``), for kernels
  whose lanes never meet (a lane is a sample, or an input, with its own chain of fused multiply-adds): their
  bits do not depend on the width, and AVX-512 doubles what a core can do per cycle.
* ``wide_pair``: two of the host's widest vectors (128 bytes with AVX-512; LLVM splits every operation in two),
  for the lanes engine, whose per-sample bookkeeping (addresses, loop counters) then serves twice the networks
  (bench/NOTES.md, change 32).

Arithmetic is ``llvm.fma`` (rounded once): a lane, a scalar, a fresh compile and the on-disk cache give the
same bits.

Loads and stores do no bounds checks, and ``load``/``store`` read and write a whole vector: the caller keeps
``s + W <= row length``.
"""
from types import ModuleType

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ...config import VECTOR_BYTES

BYTES = 64  # the fixed vector's size: 16 float32 or 8 float64 lanes


class Vec(types.Type):
    """A SIMD vector of ``width`` values of the float type ``dtype``."""

    def __init__(self, dtype, width):
        self.dtype, self.width = dtype, width
        super().__init__(name=f"Vec({dtype}, {width})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = ir.FloatType() if fe_type.dtype == types.float32 else ir.DoubleType()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.width))


def vec_of(dtype, nbytes=BYTES):
    """The ``Vec`` type of ``nbytes`` bytes for a numba float type (``None`` for anything else)."""
    if dtype not in (types.float32, types.float64):
        return None
    return Vec(dtype, nbytes // (dtype.bitwidth // 8))


def width(dtype, nbytes=BYTES):
    """Lanes per vector of ``nbytes`` bytes for a NumPy float dtype (8 float32 or 4 float64 in 32 bytes)."""
    return nbytes // dtype.itemsize


def _is_matrix(a):
    return isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" and vec_of(a.dtype) is not None


def _matrix_at(a, r, s):
    """Whether ``a[r, s]`` indexes a C-contiguous 2-D float array with two integers."""
    return _is_matrix(a) and isinstance(r, types.Integer) and isinstance(s, types.Integer)


def _is_vector(a):
    return isinstance(a, types.Array) and a.ndim == 1 and vec_of(a.dtype) is not None


def _pointer(context, builder, aryty, ary, indices):
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, indices, wraparound=False)


def _splat(builder, vty, x):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)


def _makers(nbytes):
    """The functions that make vectors of ``nbytes`` bytes, as a namespace numba code can call into."""

    @intrinsic
    def load(typingctx, a, r, s):
        """``a[r, s:s + W]`` of a C-contiguous 2-D array as a vector (no bounds check)."""
        if not _matrix_at(a, r, s):
            return None
        vt = vec_of(a.dtype, nbytes)

        def codegen(context, builder, sig, args):
            vty = context.get_value_type(vt)
            ptr = builder.bitcast(_pointer(context, builder, sig.args[0], args[0], args[1:]), vty.as_pointer())
            return builder.load(ptr, align=a.dtype.bitwidth // 8)
        return vt(a, r, s), codegen

    @intrinsic
    def broadcast(typingctx, a, r, s):
        """``a[r, s]`` of a C-contiguous 2-D array in every lane (no bounds check)."""
        if not _matrix_at(a, r, s):
            return None
        vt = vec_of(a.dtype, nbytes)

        def codegen(context, builder, sig, args):
            x = builder.load(_pointer(context, builder, sig.args[0], args[0], args[1:]))
            return _splat(builder, context.get_value_type(vt), x)
        return vt(a, r, s), codegen

    @intrinsic
    def broadcast_flat(typingctx, p, i):
        """``p[i]`` of a 1-D array in every lane (no bounds check, no negative indices)."""
        if not (_is_vector(p) and isinstance(i, types.Integer)):
            return None
        vt = vec_of(p.dtype, nbytes)

        def codegen(context, builder, sig, args):
            x = builder.load(_pointer(context, builder, sig.args[0], args[0], [args[1]]))
            return _splat(builder, context.get_value_type(vt), x)
        return vt(p, i), codegen

    @intrinsic
    def splat(typingctx, x):
        """The float ``x`` in every lane."""
        vt = vec_of(x, nbytes)
        if vt is None:
            return None

        def codegen(context, builder, sig, args):
            return _splat(builder, context.get_value_type(vt), args[0])
        return vt(x), codegen

    @intrinsic
    def transpose_block(typingctx, a, r, s, b, k):
        """``b[s + j, k + i] = a[r + i, s + j]`` for ``i, j < W``: a W x W block transposed in registers (two
        C-contiguous 2-D arrays; no bounds check).

        W vector loads, log2(W) rounds of W interleaving shuffles (each round pairs vector ``i`` with ``i + W/2``
        and interleaves their low and high halves: after log2(W) rounds vector ``j`` holds column ``j``), W stores.
        """
        if not (_is_matrix(a) and _is_matrix(b) and a.dtype == b.dtype
                and all(isinstance(x, types.Integer) for x in (r, s, k))):
            return None

        def codegen(context, builder, sig, args):
            aty, _, _, bty, _ = sig.args
            vty = context.get_value_type(vec_of(aty.dtype, nbytes))
            n = vty.count
            align = aty.dtype.bitwidth // 8
            one = ir.Constant(args[1].type, 1)
            rows, row = [], args[1]
            for i in range(n):
                ptr = _pointer(context, builder, aty, args[0], [row, args[2]])
                rows.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=align))
                row = builder.add(row, one)
            h = n // 2
            i32 = ir.IntType(32)
            lo = ir.Constant(ir.VectorType(i32, n), [q // 2 + (q % 2) * n for q in range(n)])
            hi = ir.Constant(ir.VectorType(i32, n), [h + q // 2 + (q % 2) * n for q in range(n)])
            for _ in range(n.bit_length() - 1):
                out = []
                for i in range(h):
                    out.append(builder.shuffle_vector(rows[i], rows[i + h], lo))
                    out.append(builder.shuffle_vector(rows[i], rows[i + h], hi))
                rows = out
            row = args[2]
            for j in range(n):
                ptr = _pointer(context, builder, bty, args[3], [row, args[4]])
                builder.store(rows[j], builder.bitcast(ptr, vty.as_pointer()), align=align)
                row = builder.add(row, one)
            return context.get_dummy_value()
        return types.void(a, r, s, b, k), codegen

    space = ModuleType(f"{__name__}.vectors{nbytes}", f"Vectors of {nbytes} bytes.")
    space.BYTES = nbytes
    for f in (load, broadcast, broadcast_flat, splat, transpose_block):
        setattr(space, f.__name__, f)
    return space


fixed = _makers(BYTES)
wide = _makers(VECTOR_BYTES)
wide_pair = _makers(2 * VECTOR_BYTES)


@intrinsic
def like(typingctx, x, c):
    """The float ``c``, converted to ``x``'s precision, in every lane of a vector of ``x``'s type (so that vector
    math takes its constants at the width of its argument)."""
    if not (isinstance(x, Vec) and isinstance(c, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[1], sig.args[1], sig.args[0].dtype)
        return _splat(builder, context.get_value_type(sig.args[0]), v)
    return x(x, c), codegen


@intrinsic
def store(typingctx, a, r, s, v):
    """``a[r, s:s + W] = v`` for a C-contiguous 2-D array (no bounds check)."""
    if not (_matrix_at(a, r, s) and isinstance(v, Vec) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[3])
        ptr = builder.bitcast(_pointer(context, builder, sig.args[0], args[0], args[1:3]), vty.as_pointer())
        builder.store(args[3], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(a, r, s, v), codegen


@intrinsic
def store_flat(typingctx, a, i, v):
    """``a[i:i + W] = v`` for a 1-D array (no bounds check)."""
    if not (_is_vector(a) and isinstance(i, types.Integer) and isinstance(v, Vec) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[2])
        ptr = builder.bitcast(_pointer(context, builder, sig.args[0], args[0], [args[1]]), vty.as_pointer())
        builder.store(args[2], ptr, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(a, i, v), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (``llvm.fma``)."""
    if not (isinstance(a, Vec) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        name = "llvm.fma.v%df%d" % (ty.count, sig.args[0].dtype.bitwidth)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, args)
    return a(a, b, c), codegen


@intrinsic
def add(typingctx, a, b):
    """``a + b`` lane by lane."""
    if not (isinstance(a, Vec) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def lane_sum(typingctx, v):
    """The sum of the lanes, by a fixed tree: (l0 + l4) + (l2 + l6) + ... pairwise halves, every time."""
    if not isinstance(v, Vec):
        return None

    def codegen(context, builder, sig, args):
        n = sig.args[0].width
        lanes = [builder.extract_element(args[0], ir.Constant(ir.IntType(32), i)) for i in range(n)]
        while len(lanes) > 1:
            h = len(lanes) // 2
            lanes = [builder.fadd(lanes[i], lanes[i + h]) for i in range(h)]
        return lanes[0]
    return v.dtype(v), codegen


def _binary(op, doc):
    @intrinsic
    def f(typingctx, a, b):
        if not (isinstance(a, Vec) and a == b):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])
        return a(a, b), codegen
    f.__doc__ = doc
    return f


sub = _binary("fsub", "``a - b`` lane by lane.")
mul = _binary("fmul", "``a * b`` lane by lane.")
div = _binary("fdiv", "``a / b`` lane by lane (IEEE division, correctly rounded).")


@intrinsic
def where_gt(typingctx, a, b, c, d):
    """``c if a > b else d`` lane by lane (an ordered compare: a NaN in ``a`` or ``b`` selects ``d``), the
    same as the scalar expression."""
    if not (isinstance(a, Vec) and a == b == c == d):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[2], args[3])
    return a(a, b, c, d), codegen


def _llvm_call(builder, name, sig, args):
    ty = args[0].type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * len(args)),
                                        "llvm.%s.v%df%d" % (name, ty.count, sig.args[0].dtype.bitwidth))
    return builder.call(fn, args)


@intrinsic
def fabs(typingctx, a):
    """``|a|`` lane by lane (``llvm.fabs``: the sign bit cleared)."""
    if not isinstance(a, Vec):
        return None
    return a(a), lambda context, builder, sig, args: _llvm_call(builder, "fabs", sig, args)


@intrinsic
def copysign(typingctx, a, b):
    """``|a|`` with the sign of ``b``, lane by lane (``llvm.copysign``)."""
    if not (isinstance(a, Vec) and a == b):
        return None
    return a(a, b), lambda context, builder, sig, args: _llvm_call(builder, "copysign", sig, args)


@intrinsic
def sqrt(typingctx, a):
    """``sqrt(a)`` lane by lane (``llvm.sqrt``: IEEE, correctly rounded, as ``np.sqrt`` of a scalar)."""
    if not isinstance(a, Vec):
        return None
    return a(a), lambda context, builder, sig, args: _llvm_call(builder, "sqrt", sig, args)
