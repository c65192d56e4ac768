"""The lesson-local pieces of nbs/06_cnn_hooks_init.ipynb (not exported), taken from the notebook's own cells: the
convolution built three ways (loop, im2col and a matmul, a matrix of tied weights), the floor count, and LSUV. The
notebook keeps one representative check of each; these are the batteries."""
from functools import partial

import nbformat, pytest, torch
import torch.nn.functional as F
from torch import nn

from conftest import ROOT

NOTEBOOK = ROOT / 'nbs/06_cnn_hooks_init.ipynb'
DEFINES = ('def conv2d_loop(', 'def pad2d(', 'def im2col(', 'def conv2d(', 'def conv_matrix(', 'def floor_of(', 'def output_stats(')


@pytest.fixture(scope='module')
def lesson():
    "A namespace holding exp.nb_06 and the notebook cells that define the lesson's own functions (each found by its `def`)."
    import exp.nb_06 as stack
    ns = {k: v for k, v in vars(stack).items() if not k.startswith('__')}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for start in DEFINES:
        cells = [c.source for c in nb.cells if c.cell_type == 'code' and c.source.startswith(start)]
        assert len(cells) == 1, f"{start!r}: {len(cells)} cells in the notebook"
        # only the definitions: a cell's checks use the notebook's variables
        code = cells[0].split('\n\ntest_')[0].split('\n\nkernel =')[0].split('\n\nfor stride')[0]
        exec(code, ns)
    return ns


def cases():
    "(n, ci, co, h, w, kh, kw, stride, padding): odd sizes, non-square kernels, strides that do not divide the size."
    return [(1, 1, 1, 5, 5, 3, 3, 1, 0), (2, 3, 4, 8, 8, 3, 3, 2, 1), (2, 1, 8, 28, 28, 5, 5, 2, 2), (2, 4, 3, 7, 9, 2, 3, 1, 0),
            (3, 2, 5, 11, 10, 3, 1, 3, 1), (1, 2, 2, 6, 13, 1, 4, 2, 2), (2, 2, 3, 9, 9, 5, 5, 3, 2)]


@pytest.mark.parametrize('n, ci, co, h, w, kh, kw, s, p', cases())
def test_im2col_is_unfold_exactly(lesson, n, ci, co, h, w, kh, kw, s, p):
    x = torch.randn(n, ci, h, w)
    assert torch.equal(lesson['im2col'](x, kh, kw, s, p), F.unfold(x, (kh, kw), padding=p, stride=s))
    assert torch.equal(lesson['pad2d'](x, p), F.pad(x, (p, p, p, p)))
    assert lesson['out_size'](h, kh, s, p) == F.conv2d(x, torch.zeros(1, ci, kh, kw), stride=s, padding=p).shape[2]


@pytest.mark.parametrize('n, ci, co, h, w, kh, kw, s, p', cases())
def test_conv2d_matches_torch_in_values_and_gradients(lesson, n, ci, co, h, w, kh, kw, s, p):
    g = torch.Generator().manual_seed(h * 100 + w)
    x, weight, bias = (torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
                       for shape in ((n, ci, h, w), (co, ci, kh, kw), (co,)))
    ours = lesson['conv2d'](x, weight, bias, stride=s, padding=p)
    theirs = F.conv2d(x, weight, bias, stride=s, padding=p)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    up = torch.randn(theirs.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), up), torch.autograd.grad(theirs, (x, weight, bias), up)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_the_loop_is_a_stride_1_unpadded_convolution(lesson):
    x, weight, bias = torch.randn(2, 3, 6, 5), torch.randn(4, 3, 2, 3), torch.randn(4)
    assert torch.allclose(lesson['conv2d_loop'](x, weight, bias), F.conv2d(x, weight, bias), atol=1e-5)
    assert torch.allclose(lesson['conv2d'](x, weight, bias), lesson['conv2d_loop'](x, weight, bias), atol=1e-5)


@pytest.mark.parametrize('k, h, w', [(3, 5, 5), (2, 4, 6), (1, 3, 3), (4, 7, 5)])
def test_conv_matrix_forward_and_transpose_backward(lesson, k, h, w):
    kernel = torch.randn(k, k, dtype=torch.float64)
    W = lesson['conv_matrix'](kernel, h, w).double()
    assert W.shape == ((h - k + 1) * (w - k + 1), h * w)
    assert ((W != 0).sum(1) == k * k).all()                         # each row: the k*k weights and zeros
    img = torch.randn(h, w, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(img[None, None], kernel[None, None]).view(-1)
    assert torch.allclose(W @ img.view(-1), out)
    up = torch.randn(len(out), dtype=torch.float64)
    (grad,) = torch.autograd.grad(out, img, up)
    assert torch.allclose(grad.view(-1), W.t() @ up)


def test_conv_matrix_exact_layout(lesson):
    W = lesson['conv_matrix'](torch.tensor([[1., 2.], [3., 4.]]), 3, 3)
    assert W.tolist() == [[1, 2, 0, 3, 4, 0, 0, 0, 0], [0, 1, 2, 0, 3, 4, 0, 0, 0],
                          [0, 0, 0, 1, 2, 0, 3, 4, 0], [0, 0, 0, 0, 1, 2, 0, 3, 4]]


def test_floor_count_is_exact_for_each_activation(lesson):
    GeneralRelu, Hooks, append_floor = lesson['GeneralRelu'], lesson['Hooks'], lesson['append_floor']
    x = torch.tensor([[-3., -1., 0., 1e-5, 0.3, 2.]])   # 1e-5: live, beyond the 1e-6 tolerance
    acts = [nn.ReLU(), GeneralRelu(sub=0.4), GeneralRelu(leak=0.1, sub=0.4, maxv=6.), nn.LeakyReLU(0.1)]
    with Hooks(acts, append_floor) as hooks:
        for a in acts: a(x)
        acts[0].eval(); acts[0](x); acts[0].train()            # an evaluation forward is not recorded
    assert [h.floor for h in hooks] == [[0.5], [0.5], [0.5], [0.5]]
    assert [lesson['floor_of'](a) for a in acts] == [0., -0.4, -0.4, 0.]


def test_floor_stats_records_every_training_batch(lesson):
    GeneralRelu, Learner, FloorStats = lesson['GeneralRelu'], lesson['Learner'], lesson['FloorStats']
    from exp.nb_04 import DataLoaders
    from exp.nb_03 import Dataset
    torch.manual_seed(0)
    ds = Dataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    dls = DataLoaders.from_datasets(ds, ds, 16)
    model = nn.Sequential(nn.Linear(4, 8), GeneralRelu(sub=0.4), nn.Linear(8, 3))
    floor, truth = FloorStats(), []
    def keep(hook, mod, inp, outp):
        if mod.training: truth.append((inp[0] <= 0).float().mean().item())
    with lesson['Hooks']([model[1]], keep):
        Learner(model, dls, lr=0.1, cbs=[floor]).fit(2)
    assert len(truth) == 8 and floor.shares(0).tolist() == pytest.approx(truth, abs=1e-7)   # 4 batches x 2 epochs
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_lsuv_brings_every_block_to_mean_0_std_1(lesson):
    torch.manual_seed(1)
    make_act = partial(lesson['GeneralRelu'], leak=0.1, sub=0.4, maxv=6.)
    model = lesson['get_cnn_model'](act=make_act)
    xb = torch.randn(64, 1, 28, 28)
    before = lesson['block_stats'](model, xb)
    assert all(s < 0.5 for _, s in before)                       # the default init shrinks the signal
    lesson['lsuv_init'](model, xb)
    for m, s in lesson['block_stats'](model, xb):
        assert abs(m) < 2e-3 and abs(s - 1) < 2e-3, (m, s)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_lsuv_in_the_old_order_leaves_the_mean_off(lesson):
    "The 2019 order (the bias until the mean is 0, then the weights until the std is 1) ends with the mean moved again."
    torch.manual_seed(1)
    model = lesson['get_cnn_model'](act=partial(lesson['GeneralRelu'], leak=0.1, sub=0.4, maxv=6.))
    layer, watched = lesson['conv_blocks'](model)[0]
    hook = lesson['Hook'](watched, lesson['output_stats'])
    xb = torch.randn(64, 1, 28, 28)
    with torch.no_grad():
        for _ in range(50):
            model(xb)
            if abs(hook.mean) < 1e-3: break
            layer.bias -= hook.mean
        for _ in range(50):
            model(xb)
            if abs(hook.std - 1) < 1e-3: break
            layer.weight /= hook.std
        model(xb)
    hook.remove()
    assert abs(hook.std - 1) < 2e-3 and abs(hook.mean) > 0.05
    assert lesson['lsuv_layer'](model, layer, watched, xb) > 0                 # our order fixes it, in a few rounds
    h = lesson['block_stats'](model, xb)[0]
    assert abs(h[0]) < 1e-3 and abs(h[1] - 1) < 1e-3
