"The usual mistakes of the exercises of 02 and 03 fail with their hints; hard-coded answers fail on fresh inputs."
import torch
import torch.nn.functional as F

from exercises import run_check
from test_exercises import failing, mutated, solved


def test_02_wrong_shapes_and_finite_difference_mistakes():
    shapes = dict(solved('02_fully_connected', '02.1')['grad_shapes'])
    failing(run_check('02.1', shapes | {'w.g': (50, 784)}), "(n_in, n_out)")
    failing(run_check('02.1', shapes | {'out.g (for mse of a (64, 1) output)': (64,)}), 'unit axis')
    one_sided = mutated('02_fully_connected', '02.2', 'numeric_grad', '(f(up) - f(down)) / (2 * h)', '(f(up) - f(x)) / h')
    failing(run_check('02.2', one_sided), 'central difference')
    def in_place(f, x, h=1e-4):   # nudges x itself and never puts it back
        grad = torch.zeros_like(x)
        for i in range(x.numel()):
            x.view(-1)[i] += h
            grad.view(-1)[i] = (f(x) - f(x - 2 * h * torch.nn.functional.one_hot(torch.tensor(i), x.numel()).view(x.shape))) / (2 * h)
        return grad
    failing(run_check('02.2', in_place), 'put each entry back')
    fixed = torch.zeros(3, 4, dtype=torch.float64)
    failing(run_check('02.2', lambda f, x, h=1e-4: fixed))


def test_02_outer_products_and_sigmoid_mistakes():
    assert run_check('02.3', solved('02_fully_connected', '02.3')['weight_grad']).state == 'correct'
    mean = mutated('02_fully_connected', '02.3', 'weight_grad', '.sum(0)', '.mean(0)')
    failing(run_check('02.3', mean), 'a sum over the samples')
    transposed = mutated('02_fully_connected', '02.3', 'weight_grad', 'inp[:, :, None] * out_g[:, None, :]', 'out_g[:, :, None] * inp[:, None, :]')
    failing(run_check('02.3', transposed), 'column')
    def uses_matmul(inp, out_g): return inp.t() @ out_g
    failing(run_check('02.3', uses_matmul), 'uses `@`')
    Module = solved('02_fully_connected')['Module']
    class NoChain(Module):
        def forward(self, inp): return 1 / (1 + torch.exp(-inp))
        def bwd(self, out, inp): inp.g = out * (1 - out)
    class FromInput(Module):
        def forward(self, inp): return 1 / (1 + torch.exp(-inp))
        def bwd(self, out, inp): inp.g = out * (1 - inp) * out.g
    failing(run_check('02.4', NoChain), 'chain rule')
    failing(run_check('02.4', FromInput), 'the *output*')
    assert run_check('02.4', solved('02_fully_connected', '02.4')['Sigmoid']).state == 'correct'


def test_03_predictions_log_softmax_and_cross_entropy_mistakes():
    exp = dict(solved('03_minibatch_training', '03.1')['float32_exp'])
    failing(run_check('03.1', exp | {'torch.tensor(-100.).exp()': '0'}), '1.4e-45')
    def naive(x): return (x.exp() / x.exp().sum(-1, keepdim=True)).log()
    failing(run_check('03.2', naive), 'max')
    no_keepdim = mutated('03_minibatch_training', '03.2', 'my_log_softmax', 'sum(-1, keepdim=True)', 'sum(-1)')
    failing(run_check('03.2', no_keepdim))
    def library(x): return F.log_softmax(x, -1)
    failing(run_check('03.2', library), 'calls `log_softmax`')
    ns = solved('03_minibatch_training', '03.2')
    exec("def columns(logits, targets): return -my_log_softmax(logits)[:, targets].mean()\n"
         "def summed(logits, targets): return -my_log_softmax(logits)[range(len(targets)), targets].sum()", ns)
    failing(run_check('03.3', ns['columns']), 'whole columns')
    failing(run_check('03.3', ns['summed']), 'not sum')
    failing(run_check('03.3', lambda logits, targets: torch.tensor(2.3)))


def test_03_batches_and_challenge_mistakes():
    def drops_last(n, bs, shuffle=False, generator=None):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        return [order[i:i + bs] for i in range(0, n - bs + 1, bs)]
    failing(run_check('03.4', drops_last), 'not dropped')
    def global_generator(n, bs, shuffle=False, generator=None):
        order = torch.randperm(n) if shuffle else torch.arange(n)
        return [order[i:i + bs] for i in range(0, n, bs)]
    failing(run_check('03.4', global_generator), 'generator you were given')
    untrained = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
    x, y = torch.randn(200, 784), torch.randint(0, 10, (200,))
    r = failing(run_check('03.5', untrained, x, y), '0.832')
    assert r.number is None
    wide = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    failing(run_check('03.5', wide, x, y), 'over the budget')
