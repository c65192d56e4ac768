"Checks of the exported exp.nb_01 and exp.nb_02 on small random tensors (no data needed)."
import math
import pytest
import torch
from exp.nb_01 import matmul_loops, matmul_elementwise, matmul_broadcast, matmul, matmul_einsum, frobenius_norm
from exp.nb_02 import stats, normalize, lin, relu, mse, forward_and_backward, Module, Mse, Model
# aliased so pytest does not collect the helpers themselves as tests
from exp.nb_00 import test_near as check_near, test_eq as check_eq, test_fail as check_fails


@pytest.fixture
def gen(): return torch.Generator().manual_seed(0)


def test_matmul_ladder_agrees_with_torch(gen):
    a, b = torch.randn(4, 7, generator=gen), torch.randn(7, 3, generator=gen)
    for f in (matmul_loops, matmul_elementwise, matmul_broadcast, matmul, matmul_einsum):
        check_near(f(a, b), a @ b)
    check_fails(lambda: matmul(a, a), contains='inner dimensions differ')


def test_frobenius_and_stats(gen):
    m = torch.randn(5, 6, generator=gen)
    check_near(frobenius_norm(m), torch.linalg.norm(m))
    mean, std = stats(torch.tensor([1., 2., 3., 4.]))
    assert isinstance(mean, float) and mean == 2.5 and abs(std - math.sqrt(5 / 3)) < 1e-6


def test_normalize():
    x = torch.tensor([1., 3.])
    check_eq(normalize(x, 2., 1.), torch.tensor([-1., 1.]))


def test_mse_shapes():
    out, targ = torch.tensor([[1.], [3.]]), torch.tensor([0., 1.])
    check_near(mse(out, targ), 2.5)
    check_near(mse(torch.tensor([[2.]]), torch.tensor([1.])), 1.0)   # batch of one


def _params(gen, n_in=6, nh=5):
    return (torch.randn(n_in, nh, generator=gen), torch.randn(nh, generator=gen),
            torch.randn(nh, 1, generator=gen), torch.randn(1, generator=gen))


def _autograd(x, y, params):
    xg = x.clone().requires_grad_(True)
    ps = [p.clone().requires_grad_(True) for p in params]
    loss = mse(lin(relu(lin(xg, ps[0], ps[1])), ps[2], ps[3]), y)
    loss.backward()
    return loss.detach(), [p.grad for p in ps] + [xg.grad]


@pytest.mark.parametrize('batch', [1, 8])
def test_forward_and_backward_matches_autograd(gen, batch):
    x, y = torch.randn(batch, 6, generator=gen, dtype=torch.float64), torch.randn(batch, generator=gen, dtype=torch.float64)
    params = [p.double() for p in _params(gen)]
    ref_loss, ref = _autograd(x, y, params)
    loss = forward_and_backward(x, y, *params)
    check_near(loss, ref_loss, rtol=1e-12, atol=0)
    for got, want in zip([p.g for p in params] + [x.g], ref): check_near(got, want, rtol=1e-10, atol=1e-12)


def test_module_model_matches_autograd(gen):
    x, y = torch.randn(8, 6, generator=gen, dtype=torch.float64), torch.randn(8, generator=gen, dtype=torch.float64)
    params = [p.double() for p in _params(gen)]
    ref_loss, ref = _autograd(x, y, params)
    model = Model(*params)
    assert isinstance(model.layers[0], Module) and isinstance(model.loss, Mse)
    check_near(model(x, y), ref_loss, rtol=1e-12, atol=0)
    model.backward()
    for got, want in zip([p.g for p in params] + [x.g], ref): check_near(got, want, rtol=1e-10, atol=1e-12)


def test_module_base_stores_args_and_out():
    class Double(Module):
        def forward(self, x): return 2 * x
        def bwd(self, out, x): x.g = 2 * out.g
    d, x = Double(), torch.tensor([1., 2.])
    out = d(x)
    assert d.args == (x,) and d.out is out
    out.g = torch.ones(2)
    d.backward()
    check_eq(x.g, torch.tensor([2., 2.]))
    check_fails(lambda: Module()(x), exc=NotImplementedError)
