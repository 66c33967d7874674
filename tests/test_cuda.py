"""The CUDA engine against the NumPy reference, in numba's CUDA simulator (or on a GPU where there is one).

The simulator must be switched on before numba is imported, so the CUDA tests (marked ``cuda``, here and in
the engine-parametrised tests) run as a step of their own, after the plain ``pytest``::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda

On a machine with a CUDA GPU a plain ``pytest`` runs them on the GPU.
Cases are tiny (14 samples, 3 networks, a few steps) because the simulator runs every CUDA thread as a Python
thread; the backend's reduction chunk is set to 4 samples and blocks to 6 threads so that every reduction
has several chunks, every phase several threads, and several blocks run.
"""
import numpy as np
import pytest

from fastmlp import rng
from fastmlp.engine import Problem
from fastmlp.init import init_batch
from fastmlp.spec import Init, Network, Training
from fastmlp.train import as_targets, train_batch

from oracle import CUDA_HERE, CUDA_SIM as SIM, assert_matches_reference

HERE = CUDA_HERE
needs_cuda = pytest.mark.skipif(
    not HERE, reason="no GPU here; the CUDA tests run in numba's simulator as their own step: "
                     "NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda")

# every test here belongs to the CUDA step (-m cuda); the simulator runs the uint64 hash on NumPy scalars,
# which warn on the intended wrap-around
pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")]


# ---------------------------------------------------------------------------------------------------------
# helpers

@pytest.fixture(autouse=True)
def _small_launch(monkeypatch):
    if HERE:
        from fastmlp.engine import cuda as cuda_engine
        monkeypatch.setattr(cuda_engine, "CHUNK", 4)
        monkeypatch.setattr(cuda_engine, "SIM_THREADS", 6)


def make_data(network, S=14, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(S, network.n_inputs))
    if network.output == "softmax":
        y = np.argmax(X @ r.normal(size=(network.n_inputs, network.n_outputs)), axis=1)
    elif network.output == "identity":
        y = X @ r.normal(size=(network.n_inputs, network.n_outputs))
    else:
        y = (X[:, :network.n_outputs] + 0.3 * X[:, -1:] > 0).astype(np.int64)
    return X, y


def run_both(network, training, dtype="float64", N=3, init=Init("xavier_normal"), params=None, S=14, **kw):
    X, y = make_data(network, S)
    p0 = init_batch(network, init, list(range(1, N + 1)), dtype) if params is None else params
    ref = train_batch(network, X, y, p0, training=training, backend="numpy", **kw)
    got = train_batch(network, X, y, p0, training=training, backend="cuda", **kw)
    return ref, got


def assert_matches(ref, got, dtype="float64"):
    assert_matches_reference(got, ref, dtype, moved=False)


# ---------------------------------------------------------------------------------------------------------
# the comparisons (simulator or GPU)

@needs_cuda
def test_gpu_info_and_availability():
    from fastmlp.engine import cuda as cuda_engine, get_engine
    assert get_engine("cuda") is cuda_engine
    info = cuda_engine.gpu_info()
    assert isinstance(info, dict) and info["name"]
    assert info["simulator"] == SIM


@needs_cuda
def test_device_hash_matches_rng():
    from fastmlp.engine.cuda import block as kern
    r = np.random.default_rng(5)
    n = 8
    seeds = np.array([0, 1, 2**63 + 5, *r.integers(0, 2**62, n - 3)], dtype=np.uint64)
    epochs = r.integers(0, 1000, n).astype(np.int64)
    steps = r.integers(0, 10**6, n).astype(np.int64)
    layers = r.integers(0, 5, n).astype(np.int64)
    counters = r.integers(0, 10**9, n).astype(np.int64)
    bits = np.zeros(n, np.uint64)
    uni = np.zeros(n)
    dro = np.zeros(n)
    kern.rng_probe_kernel[2, 4](seeds, epochs, steps, layers, counters, bits, uni, dro)
    for i in range(n):
        key = rng.stream_key_np(seeds[i], int(rng.SHUFFLE) | int(epochs[i]))
        assert bits[i] == rng.bits_np(key, [counters[i]])[0]
        assert uni[i] == rng.uniform_np(key, [counters[i]])[0]
        dkey = rng.stream_key_np(seeds[i], rng.dropout_stream_np(steps[i], layers[i]))
        assert dro[i] == rng.uniform_np(dkey, [counters[i]])[0]


@needs_cuda
@pytest.mark.parametrize("S", [1, 2, 7, 16, 23])
def test_device_epoch_permutation(S):
    from fastmlp.engine.cuda import block as kern
    from fastmlp.engine.cuda import _next_pow2
    seeds = np.array([0, 3, 12345], dtype=np.uint64)
    epochs = np.array([0, 4, 2], dtype=np.int64)
    Sp = _next_pow2(S)
    PS = np.zeros((3, 2 * Sp), np.uint64)
    kern.permutation_probe_kernel[3, 5](seeds, epochs, S, PS)
    for b in range(3):
        np.testing.assert_array_equal(PS[b, Sp:Sp + S].astype(np.int64),
                                      rng.epoch_permutation_np(seeds[b], epochs[b], S))


@needs_cuda
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "leaky_relu", "linear"])
def test_activations(activation):
    net = Network(n_inputs=3, hidden=(4,), activation=activation, leaky_slope=0.1)
    ref, got = run_both(net, Training(lr=0.5, steps=4))
    assert_matches(ref, got)


@needs_cuda
@pytest.mark.parametrize("output,k", [("softmax", 3), ("identity", 2)])
def test_outputs(output, k):
    net = Network(n_inputs=3, hidden=(4, 3), n_outputs=k, activation="tanh", output=output)
    ref, got = run_both(net, Training(lr=0.3, steps=4))
    assert_matches(ref, got)


@needs_cuda
def test_single_layer_model():
    net = Network(n_inputs=3, hidden=(), n_outputs=2, output="identity")
    ref, got = run_both(net, Training(optimizer="adam", lr=0.1, steps=4, batch_size=8, dropout=0.5))
    assert_matches(ref, got)


@needs_cuda
@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_optimizers_with_weight_decay(optimizer):
    net = Network(n_inputs=3, hidden=(4,), activation="tanh")
    ref, got = run_both(net, Training(optimizer=optimizer, lr=0.1, momentum=0.8, steps=5),
                        weight_decay=[0.0, 0.01, 0.2])
    assert_matches(ref, got)


@needs_cuda
def test_minibatch_over_epochs_with_record_every_and_grad_norms():
    # 14 samples in batches of 5: epochs of 3 steps, the last batch short (4); 8 steps cross 3 epochs
    net = Network(n_inputs=3, hidden=(4, 3), activation="relu")
    ref, got = run_both(net, Training(lr=0.2, steps=8, batch_size=5, record_every=3), track_grad_norms=True)
    assert_matches(ref, got)
    assert np.isfinite(got.grad_norms).all()


@needs_cuda
def test_dropout_full_batch_and_per_network_rates():
    net = Network(n_inputs=3, hidden=(4, 3), activation="tanh")
    ref, got = run_both(net, Training(lr=0.3, steps=4), dropout=[0.0, 0.3, 0.6])
    assert_matches(ref, got)


@needs_cuda
def test_dropout_with_minibatch_and_adam_float32():
    net = Network(n_inputs=3, hidden=(5,), n_outputs=3, activation="sigmoid", output="softmax")
    ref, got = run_both(net, Training(optimizer="adam", lr=0.05, steps=5, batch_size=6, dropout=0.25),
                        dtype="float32", weight_decay=0.01)
    assert_matches(ref, got, "float32")


@needs_cuda
@pytest.mark.parametrize("activation,optimizer", [("tanh", "sgd"), ("leaky_relu", "nesterov")])
def test_float32(activation, optimizer):
    net = Network(n_inputs=3, hidden=(4,), n_outputs=2, activation=activation, output="identity")
    ref, got = run_both(net, Training(optimizer=optimizer, lr=0.05, steps=5), dtype="float32",
                        track_grad_norms=True)
    assert_matches(ref, got, "float32")


@needs_cuda
def test_constant_init_keeps_hidden_units_bit_identical():
    net = Network(n_inputs=3, hidden=(4, 3), activation="tanh")
    for dtype in ("float64", "float32"):
        ref, got = run_both(net, Training(optimizer="momentum", lr=0.5, steps=5), dtype=dtype, N=2,
                            init=Init("constant", value=0.3))
        assert_matches(ref, got, dtype)
        for i in range(2):
            (W1, b1), (W2, b2), (W3, _) = got.layers(i)
            assert not np.array_equal(W1[:, 0], W1[:, 1])  # the columns differ (inputs differ) ...
            for W, b in ((W1, b1), (W2, b2)):
                assert (W == W[0]).all() and (b == b[0]).all()  # ... the rows stay equal, bit for bit
            assert (W3 == W3[0, 0]).all()
            assert not np.array_equal(got.layers(i)[0][0], got.layers(i, initial=True)[0][0])


@needs_cuda
def test_divergence_step_and_frozen_params():
    net = Network(n_inputs=3, hidden=(4,), n_outputs=1, activation="relu", output="identity")
    X, y = make_data(net)
    p0 = init_batch(net, Init("xavier_normal"), [1, 2, 3], "float64")
    lr = [1e-3, 30.0, 3e5]
    tr = Training(lr=0.1, steps=6)
    ref = train_batch(net, X, y * 100, p0, training=tr, lr=lr, backend="numpy")
    got = train_batch(net, X, y * 100, p0, training=tr, lr=lr, backend="cuda")
    assert ref.diverged_step[0] == -1 and (ref.diverged_step[1:] >= 1).all()
    assert_matches(ref, got)


@needs_cuda
def test_divergence_on_a_non_finite_logit():
    # sigmoid output: the loss is only computed on recorded steps, a non-finite logit is caught on every step
    net = Network(n_inputs=3, hidden=(4,), activation="linear")
    X, y = make_data(net)
    p0 = init_batch(net, Init("normal", std=30.0), [1, 2], "float64")
    p0[1, :] *= 1e154
    tr = Training(lr=1e3, steps=5, record_every=4)
    ref = train_batch(net, X * 1e3, y, p0, training=tr, backend="numpy")
    got = train_batch(net, X * 1e3, y, p0, training=tr, backend="cuda")
    assert ref.diverged_step[1] == 0
    assert_matches(ref, got)


@needs_cuda
def test_launch_configuration_does_not_change_results():
    from fastmlp.engine import cuda as cuda_engine
    net = Network(n_inputs=3, hidden=(4,), n_outputs=2, activation="tanh", output="softmax")
    X, y = make_data(net)
    p0 = init_batch(net, Init("xavier_normal"), [1, 2, 3], "float64")
    T = as_targets(net, y, X.shape[0], np.float64)
    N = p0.shape[0]
    prob = Problem(sizes=net.sizes, activation="tanh", output="softmax", optimizer="momentum", params=p0, X=X, T=T,
                   lr=np.full(N, 0.3), momentum=np.full(N, 0.9), weight_decay=np.zeros(N),
                   dropout=np.array([0.0, 0.2, 0.4]), seeds=np.arange(N, dtype=np.uint64), steps=4, batch_size=6,
                   track_grad_norms=True)
    base = cuda_engine.train(prob, threads_per_block=6, chunk=4, path="block")
    for kw in (dict(threads_per_block=1), dict(threads_per_block=11), dict(max_blocks=1), dict(max_blocks=2),
               dict(path="chunk"), dict(path="chunk", threads_per_block=1, max_blocks=2)):
        other = cuda_engine.train(prob, chunk=4, **{"path": "block", **kw})
        for a, b in zip(base, other):
            np.testing.assert_array_equal(a, b, err_msg=str(kw))


# ---------------------------------------------------------------------------------------------------------
# the tiled path (engine/cuda_tiled.py): the same bits as the block path, whatever the tiles

TILED_CASES = {
    "tanh-softmax-adam-dropout-minibatch": (
        Network(n_inputs=3, hidden=(5, 6), n_outputs=3, activation="tanh", output="softmax"),
        Training(optimizer="adam", lr=0.05, steps=5, batch_size=5, record_every=2, dropout=0.3), "float64",
        dict(weight_decay=[0.0, 0.01, 0.1], track_grad_norms=True)),
    "relu-identity-nesterov-float32": (
        Network(n_inputs=3, hidden=(6,), n_outputs=2, activation="relu", output="identity"),
        Training(optimizer="nesterov", lr=0.05, momentum=0.8, steps=4), "float32", dict(track_grad_norms=True)),
    "sigmoid-momentum-dropout-rates": (
        Network(n_inputs=3, hidden=(4, 3), activation="sigmoid"),
        Training(optimizer="momentum", lr=0.3, steps=4), "float64", dict(dropout=[0.0, 0.3, 0.6])),
    "single-layer-leaky-minibatch": (
        Network(n_inputs=3, hidden=(), n_outputs=2, output="identity"),
        Training(lr=0.1, steps=4, batch_size=6), "float64", {}),
}


@needs_cuda
@pytest.mark.parametrize("path", ["tiled", "chunk"])
@pytest.mark.parametrize("case", sorted(TILED_CASES))
def test_paths_match_the_block_path_bit_for_bit(case, path, monkeypatch):
    net, tr, dtype, kw = TILED_CASES[case]
    X, y = make_data(net)
    p0 = init_batch(net, Init("xavier_normal"), [1, 2, 3], dtype)
    got = {}
    for name in ("block", path):
        monkeypatch.setenv("FASTMLP_CUDA_PATH", name)  # the route a user without code changes takes
        got[name] = train_batch(net, X, y, p0, training=tr, backend="cuda", **kw)
    ref = train_batch(net, X, y, p0, training=tr, backend="numpy", **kw)
    assert_matches(ref, got[path], dtype)
    for name in ("params", "curves", "diverged_step", "grad_norms"):
        np.testing.assert_array_equal(getattr(got[path], name), getattr(got["block"], name), err_msg=name)


@needs_cuda
@pytest.mark.parametrize("path", ["tiled", "chunk"])
def test_paths_divergence_and_constant_init(path, monkeypatch):
    monkeypatch.setenv("FASTMLP_CUDA_PATH", path)
    net = Network(n_inputs=3, hidden=(4,), n_outputs=1, activation="relu", output="identity")
    X, y = make_data(net)
    p0 = init_batch(net, Init("xavier_normal"), [1, 2, 3], "float64")
    tr = Training(lr=0.1, steps=6)
    lr = [1e-3, 30.0, 3e5]
    ref = train_batch(net, X, y * 100, p0, training=tr, lr=lr, backend="numpy")
    got = train_batch(net, X, y * 100, p0, training=tr, lr=lr, backend="cuda")
    assert ref.diverged_step[0] == -1 and (ref.diverged_step[1:] >= 1).all()
    assert_matches(ref, got)
    # identical hidden units stay identical through tiles and slabs of every size
    net = Network(n_inputs=3, hidden=(9,), activation="tanh")
    ref, got = run_both(net, Training(optimizer="momentum", lr=0.5, steps=3), N=1, init=Init("constant", value=0.3))
    assert_matches(ref, got)
    (W1, b1), _ = got.layers(0)
    assert (W1 == W1[0]).all() and (b1 == b1[0]).all()
    assert not np.array_equal(W1, got.layers(0, initial=True)[0][0])


@needs_cuda
def test_tiled_path_does_not_depend_on_tiles_or_groups():
    from fastmlp.engine import cuda as cuda_engine
    net = Network(n_inputs=5, hidden=(7, 6), n_outputs=3, activation="tanh", output="softmax")
    X, y = make_data(net, S=11)
    p0 = init_batch(net, Init("xavier_normal"), [1, 2], "float64")
    T = as_targets(net, y, X.shape[0], np.float64)
    N = p0.shape[0]
    prob = Problem(sizes=net.sizes, activation="tanh", output="softmax", optimizer="adam", params=p0, X=X, T=T,
                   lr=np.full(N, 0.05), momentum=np.full(N, 0.9), weight_decay=np.full(N, 0.01),
                   dropout=np.array([0.0, 0.25]), seeds=np.arange(N, dtype=np.uint64), steps=2, batch_size=9,
                   track_grad_norms=True)
    base = cuda_engine.train(prob, chunk=3, path="block")
    # tiles narrower and shallower than the layers, odd shapes, one network per launch
    for kw in (dict(tiles=(4, 4, 2, 2, 2)), dict(tiles=(3, 5, 1, 3, 1)), dict(tiles=(8, 8, 4, 4, 4), max_blocks=1)):
        other = cuda_engine.train(prob, chunk=3, path="tiled", **kw)
        for a, b in zip(base, other):
            np.testing.assert_array_equal(a, b, err_msg=str(kw))


@needs_cuda
@pytest.mark.parametrize("seed", range(5))
def test_paths_agree_on_random_networks(seed):
    """Random shapes (0-3 hidden layers of 1-5 units), options, batch sizes, chunks and odd tiles: the chunk and
    tiled paths give the block path's bits."""
    from fastmlp.engine import cuda as cuda_engine
    r = np.random.default_rng(seed)
    out = ["sigmoid", "softmax", "identity"][r.integers(3)]
    K = int(r.integers(2, 4)) if out == "softmax" else int(r.integers(1, 3))
    hidden = tuple(int(x) for x in r.integers(1, 6, r.integers(0, 4)))
    act = ["tanh", "sigmoid", "relu", "leaky_relu", "linear"][r.integers(5)]
    net = Network(n_inputs=int(r.integers(1, 5)), hidden=hidden, n_outputs=K, activation=act, output=out,
                  leaky_slope=0.1)
    dtype = ["float32", "float64"][r.integers(2)]
    S = int(r.integers(3, 16))
    X, y = make_data(net, S, seed)
    prob = Problem(sizes=net.sizes, activation=act, output=out, optimizer=["sgd", "momentum", "nesterov",
                   "adam"][r.integers(4)], params=init_batch(net, Init("xavier_normal"), [1, 2], dtype),
                   X=X.astype(dtype), T=as_targets(net, y, S, np.dtype(dtype)), lr=np.array([0.1, 0.5]),
                   momentum=np.full(2, 0.8), weight_decay=np.array([0.0, 0.05]),
                   dropout=np.array([0.0, 0.3]) if hidden else np.zeros(2), seeds=np.array([3, 9], np.uint64),
                   steps=int(r.integers(1, 4)), batch_size=int(r.integers(0, S + 1)),
                   record_every=int(r.integers(1, 3)), track_grad_norms=bool(r.integers(2)))
    chunk = int(r.integers(1, 6))
    base = cuda_engine.train(prob, chunk=chunk, path="block")
    for kw in (dict(path="chunk"), dict(path="tiled", tiles=(3, 4, 2, 1, 2))):
        got = cuda_engine.train(prob, chunk=chunk, **kw)
        for name, a, b in zip(("params", "curves", "diverged", "grad_norms"), base, got):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, {kw}, sizes {net.sizes}")


@needs_cuda
def test_bench_rows_name_the_path_that_ran():
    from fastmlp.benchmark import run_benchmark
    rows = run_benchmark("w1", "float32", [], n_networks=1, steps=1, reference_networks=1, backend="cuda",
                         separate=False, cuda_paths=("auto", "block"))
    assert [(r["impl"], r.get("cuda_path")) for r in rows] == [
        ("fastmlp (cuda)", "chunk"), ("fastmlp (cuda block)", "block"), ("fastmlp (numba)", None)]
    assert rows[1]["loss_max_rel_diff"] == 0.0  # the same bits on both paths


# ---------------------------------------------------------------------------------------------------------
# no GPU needed

def test_auto_path_choice():
    from types import SimpleNamespace
    from fastmlp.engine.cuda import choose_path
    from fastmlp.workloads import make_workload
    want = {"w1": "chunk", "w2": "tiled", "wide": "tiled"}  # 37 parameters; 64 units wide; 300
    for name, path in want.items():
        assert choose_path(make_workload(name, n_networks=1, steps=1).network) == path
    assert choose_path(SimpleNamespace(sizes=(2, 4, 1))) == "chunk"  # 17 parameters
    assert choose_path(SimpleNamespace(sizes=(3, 8, 3))) == "chunk"  # 59
    assert choose_path(SimpleNamespace(sizes=(3, 8, 4))) == "block"  # 68, 8 wide
    assert choose_path(SimpleNamespace(sizes=(784, 16, 10))) == "block"
    assert choose_path(SimpleNamespace(sizes=(3, 40, 2))) == "tiled"  # 242, 40 wide


def test_bad_path_and_tiles_are_clear_errors(monkeypatch):
    from fastmlp.engine import cuda as cuda_engine
    net = Network(n_inputs=3, hidden=(4,))
    X, y = make_data(net)
    T = as_targets(net, y, X.shape[0], np.float64)
    prob = Problem(sizes=net.sizes, activation="tanh", output="sigmoid", optimizer="sgd",
                   params=init_batch(net, Init("xavier_normal"), [1], "float64"), X=X, T=T, lr=np.ones(1),
                   momentum=np.zeros(1), weight_decay=np.zeros(1), dropout=np.zeros(1), seeds=np.zeros(1, np.uint64),
                   steps=1)
    with pytest.raises(ValueError, match="'diagonal'"):
        cuda_engine.train(prob, path="diagonal")
    big = Network(n_inputs=50, hidden=(40,), n_outputs=2)
    Xb, yb = make_data(big)
    prob_big = Problem(sizes=big.sizes, activation="tanh", output="sigmoid", optimizer="sgd",
                       params=init_batch(big, Init("xavier_normal"), [1], "float64"), X=Xb,
                       T=as_targets(big, yb, Xb.shape[0], np.float64), lr=np.ones(1), momentum=np.zeros(1),
                       weight_decay=np.zeros(1), dropout=np.zeros(1), seeds=np.zeros(1, np.uint64), steps=1)
    with pytest.raises(ValueError, match="2122 parameters"):
        cuda_engine.train(prob_big, path="chunk")
    assert cuda_engine.paths_for(big.sizes) == ("block", "tiled")
    assert cuda_engine.paths_for(net.sizes) == ("block", "chunk", "tiled")
    with pytest.raises(ValueError, match=r"RM must divide TM.*\(8, 8, 4, 3, 4\)"):
        cuda_engine.train(prob, path="tiled", tiles=(8, 8, 4, 3, 4))
    with pytest.raises(ValueError, match="threads per block"):
        cuda_engine.train(prob, path="tiled", tiles=(64, 32, 4, 4, 1))  # 512 threads
    with pytest.raises(ValueError, match="49152"):
        cuda_engine.train(prob, path="tiled", tiles=(128, 128, 32, 8, 8))  # 66 KB in float64
    many = Problem(**{**prob.__dict__, "X": np.zeros((70000, 3)), "T": np.zeros((70000, 1))})
    with pytest.raises(ValueError, match="a batch of 70000 samples in tiles of TN = 1 needs more than 65535"):
        cuda_engine.train(many, path="tiled", tiles=(1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"threads per block must be in \[1, 256\], got 300"):
        cuda_engine.train(prob, threads_per_block=300)
    for env in ("64,64,16", "64,64,x,4,4", "64,64,0,4,4"):
        monkeypatch.setenv("FASTMLP_CUDA_TILES", env)
        with pytest.raises(ValueError, match=f"FASTMLP_CUDA_TILES='{env}'"):
            cuda_engine.train(prob, path="tiled")


def test_a_gpu_without_numba_cuda_is_a_clear_message(monkeypatch):
    from types import SimpleNamespace
    from fastmlp.engine.cuda import device
    monkeypatch.setattr(device, "simulated", lambda: False)
    monkeypatch.setattr(device, "_cuda", lambda: SimpleNamespace(is_available=lambda: True))
    real = device.importlib.util.find_spec
    monkeypatch.setattr(device.importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    with pytest.raises(RuntimeError, match="numba-cuda package is not installed.*fastmlp\\[cuda\\]"):
        device.check_available()
