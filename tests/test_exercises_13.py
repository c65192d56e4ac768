"""The exercises of 13_activations_batchnorm: each usual mistake fails with its hint, hard-coded answers fail on fresh
inputs, the challenge's reference number is the notebook's and its reference solution beats it (test_exercises.py
covers the layout, the reference solutions in quick mode and the untouched starters)."""
import ast, math

import nbformat, pytest, torch
from torch import nn

from conftest import ROOT, correct
from exercises import run_check
from exercises.nb_13 import NOTEBOOK_DEV_2K, SATURATED_1, SATURATED_3, UNIFORM_27, UNIFORM_65, saturated_share
from test_exercises import SOLUTIONS, failing, mutated, solved

STEM = '13_activations_batchnorm'


# ---- 13.1: predictions ----

def test_13_1_the_truth_it_checks_against_is_true():
    "The shares come from a formula (erfc); a million samples agree with it."
    g = torch.Generator().manual_seed(0)
    for std in (1, 3):
        sampled = (torch.tanh(torch.randn(1_000_000, generator=g, dtype=torch.float64) * std).abs() > 0.97).double().mean().item()
        assert abs(sampled - saturated_share(std)) < 0.002
    assert abs(saturated_share(1) - 0.0364) < 1e-4 and abs(saturated_share(3) - 0.486) < 1e-3


def test_13_1_wrong_predictions_fail_with_the_hint_for_that_mistake():
    right = solved(STEM, '13.1')['predictions']
    correct(run_check('13.1', right))
    correct(run_check('13.1', right | {UNIFORM_27: 3.2958, SATURATED_1: 0.036, SATURATED_3: 0.49}))   # rounded
    failing(run_check('13.1', right | {UNIFORM_27: math.log10(27)}), 'natural logarithm')
    failing(run_check('13.1', right | {UNIFORM_65: math.log(27)}), 'natural logarithm')
    failing(run_check('13.1', right | {SATURATED_1: saturated_share(1) / 2}), 'both tails')   # one tail only
    failing(run_check('13.1', right | {SATURATED_1: math.erfc(0.97 / 2 ** 0.5)}), 'atanh(0.97)')   # |x| > 0.97, not atanh
    failing(run_check('13.1', right | {SATURATED_3: 48.6}), 'fraction')                       # a percentage
    failing(run_check('13.1', right | {SATURATED_3: saturated_share(1)}), 'a third')          # the scale ignored
    failing(run_check('13.1', right | {SATURATED_3: True}))                                   # not a number
    failing(run_check('13.1', right | {SATURATED_3: ...}), 'still to answer')
    assert run_check('13.1', {k: ... for k in right}).state == 'not attempted'


# ---- 13.2: kaiming_tanh ----

@pytest.mark.parametrize('old, new, hint', [
    ('* (5 / 3) / fan_in ** 0.5', '/ fan_in ** 0.5', 'the gain is missing'),
    ('* (5 / 3) / fan_in ** 0.5', '* 2 ** 0.5 / fan_in ** 0.5', "ReLU's gain"),
    ('* (5 / 3) / fan_in ** 0.5', '* (5 / 3) / fan_in', 'square root of fan_in'),
    ('* (5 / 3) / fan_in ** 0.5', '* (5 / 3) / fan_out ** 0.5', 'not fan_out'),
    ('* (5 / 3) / fan_in ** 0.5', '* (5 / 3)', 'divide by sqrt(fan_in)'),
    ('* (5 / 3) / fan_in ** 0.5', '* (5 / 3) ** 2 / fan_in ** 0.5', 'not squared'),
    ('torch.randn((fan_in, fan_out)', 'torch.randn((fan_out, fan_in)', "nn.Linear's layout"),
    ('torch.randn((fan_in, fan_out), generator=generator)', 'torch.randn((fan_in, fan_out))', 'generator you are given'),
    ('torch.randn((fan_in, fan_out), generator=generator)', 'torch.rand((fan_in, fan_out), generator=generator)', 'centred on 0'),
])
def test_13_2_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('13.2', mutated(STEM, '13.2', 'kaiming_tanh', old, new)), hint)


def test_13_2_the_reference_passes_a_hard_coded_scale_fails_and_uniform_kaiming_passes():
    correct(run_check('13.2', solved(STEM, '13.2')['kaiming_tanh']))
    fan_in_30 = lambda fan_in, fan_out, generator=None: torch.randn((fan_in, fan_out), generator=generator) * 0.304
    failing(run_check('13.2', fan_in_30), 'expected')
    def uniform(fan_in, fan_out, generator=None):   # the same standard deviation from nn.init: also Kaiming, and accepted
        return nn.init.kaiming_uniform_(torch.empty(fan_out, fan_in), nonlinearity='tanh', generator=generator).T
    correct(run_check('13.2', uniform))
    def stub(fan_in, fan_out, generator=None): raise NotImplementedError
    assert run_check('13.2', stub).state == 'not attempted'


# ---- 13.3: fold_batchnorm ----

@pytest.mark.parametrize('old, new, hint', [
    ('(bn.running_var + bn.eps).sqrt()', 'bn.running_var.sqrt()', 'eps belongs under the square root'),
    ('(bn.running_var + bn.eps).sqrt()', '(bn.running_var + bn.eps)', 'square root of running_var + eps'),
    ('bn.weight.detach() / (bn.running_var + bn.eps).sqrt()', 'bn.weight.detach() * (bn.running_var + bn.eps).sqrt()', 'does not multiply'),
    ('(bias - bn.running_mean) * scale', 'bias * scale', 'running mean is subtracted'),
    ('else linear.bias.detach()', 'else torch.zeros_like(bn.running_mean)', "Linear's own bias"),
    (' + bn.bias.detach()', '', 'beta'),
    ('linear.weight.detach() * scale', 'linear.weight.detach() * scale[:, None]', 'scale the columns'),
    ('linear.weight.detach() * scale', 'linear.weight.detach().mul_(scale)', 'in place'),
])
def test_13_3_each_usual_mistake_fails_with_its_hint(old, new, hint):
    failing(run_check('13.3', mutated(STEM, '13.3', 'fold_batchnorm', old, new)), hint)


def test_13_3_the_reference_passes_and_other_answers_fail():
    fold = solved(STEM, '13.3')['fold_batchnorm']
    correct(run_check('13.3', fold))
    failing(run_check('13.3', lambda linear, bn: nn.Linear(3, 3)), 'expected (weight, bias)')
    failing(run_check('13.3', lambda linear, bn: (linear.weight.detach().clone(), torch.zeros(linear.weight.shape[1]))))   # no folding
    # batch statistics in place of the running ones: right in training mode, wrong in eval mode
    def batch_stats(linear, bn):
        return fold(linear, type('BN', (), dict(weight=bn.weight, bias=bn.bias, eps=bn.eps,
                                                 running_mean=torch.zeros_like(bn.running_mean), running_var=torch.ones_like(bn.running_var)))())
    failing(run_check('13.3', batch_stats))


def test_13_3_folding_is_what_deployment_does_in_float32_too():
    "The claim of the check's message: one matrix product computes Linear + BatchNorm in eval mode (float32, a trained BN)."
    from exp.nb_13 import BatchNorm1d, Linear
    g = torch.Generator().manual_seed(0)
    lin, bn = Linear(30, 50, generator=g), BatchNorm1d(50)
    for _ in range(20): bn(lin(torch.randn(64, 30, generator=g) * 2 + 1))   # real running statistics
    bn.eval()
    W, b = solved(STEM, '13.3')['fold_batchnorm'](lin, bn)
    x = torch.randn(100, 30, generator=g)
    assert torch.allclose(x @ W + b, bn(lin(x)), atol=1e-5)


# ---- 13.4: the challenge ----

def fixed_start_namespace(monkeypatch):
    "The names 13.4's solution uses: the data of notebook 12 and the notebook's `init_fixed` (read from its cell)."
    monkeypatch.setenv('COURSE_QUICK', '0')
    from exp.nb_14 import build_dataset, build_vocab, load_names, split_words
    words = load_names()
    stoi, _ = build_vocab(words)
    train, dev, _ = split_words(words)
    (Xtr, Ytr), (Xdev, Ydev) = build_dataset(train, 3, stoi), build_dataset(dev, 3, stoi)
    nb = nbformat.read(ROOT / 'nbs' / f'{STEM}.ipynb', as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == 'code' and 'def init_fixed(' in c.source)
    fn = next(n for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef) and n.name == 'init_fixed')
    ns = solved(STEM, Xtr=Xtr, Ytr=Ytr, block_size=3, n_embd=10)
    exec(compile(ast.Module([fn], []), 'init_fixed', 'exec'), ns)
    return ns, Xdev, Ydev


def test_13_4_the_reference_number_is_the_notebooks_and_the_solution_beats_it(monkeypatch):
    ns, Xdev, Ydev = fixed_start_namespace(monkeypatch)
    import torch.nn.functional as F
    # the notebook's number: the fixed start, 2,000 steps at lr 0.1, the notebook's seed
    g = torch.Generator().manual_seed(2147483647)
    p = ns['init_fixed'](g)
    ns['train_lm'](lambda X: ns['mlp_lm_logits'](p, X), p, ns['Xtr'], ns['Ytr'], 2000, lambda step: 0.1, generator=g)
    with torch.no_grad(): dev = F.cross_entropy(ns['mlp_lm_logits'](p, Xdev), Ydev).item()
    assert round(dev, 4) == NOTEBOOK_DEV_2K
    failing(run_check('13.4', p, Xdev, Ydev), 'learning rate')           # the notebook's own run does not beat itself
    exec(SOLUTIONS[STEM]['13.4'], ns)
    assert ns['my_steps'] == 2000
    result = run_check('13.4', ns['my_params'], Xdev, Ydev)
    assert result.state == 'correct' and result.number < result.reference == NOTEBOOK_DEV_2K, str(result)


def test_13_4_other_models_are_refused():
    Xdev, Ydev = torch.randint(0, 27, (50, 3)), torch.randint(0, 27, (50,))
    from exp.nb_12 import init_mlp_lm
    failing(run_check('13.4', init_mlp_lm(n_hidden=300), Xdev, Ydev), 'not its size')
    failing(run_check('13.4', init_mlp_lm()[:4], Xdev, Ydev), 'expected the 5 trained tensors')
    assert run_check('13.4', ..., Xdev, Ydev).state == 'not attempted'
