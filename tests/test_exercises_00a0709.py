"""The exercises of 00a_data, 07_batchnorm and 09_resnet: the usual mistake of every exercise fails with its hint, a
hard-coded answer fails on the checks' fresh inputs, and the challenge refuses what it must and reports its numbers.
(test_exercises.py covers the rest for every notebook: the layout, each reference solution passing in a quick run
of its notebook, untouched starters reporting "not attempted".)"""
import hashlib, struct
from types import SimpleNamespace

import pytest, torch
import torch.nn.functional as F
from torch import nn

from conftest import correct
from exercises import run_check
from test_exercises import failing, mutated, solved




# ---- 00a_data ----

def test_00a_size_predictions_name_the_mistake_not_the_number():
    sizes = solved('00a_data', '00a.1')['file_sizes']
    correct(run_check('00a.1', sizes))
    keys = list(sizes)
    r = failing(run_check('00a.1', sizes | {keys[0]: 60_000 * 784}), 'header')
    assert '47,040,016' not in str(r) and '47040016' not in str(r)
    failing(run_check('00a.1', sizes | {keys[1]: 60_016}), 'one dimension')
    failing(run_check('00a.1', sizes | {keys[2]: 60_000 * 784}), 'float32')
    failing(run_check('00a.1', sizes | {keys[3]: 44}), 'round up')
    failing(run_check('00a.1', sizes | {keys[3]: ...}), 'still to answer')


def test_00a_idx_header_mistakes_and_a_hard_coded_answer():
    correct(run_check('00a.2', solved('00a_data', '00a.2')['idx_header']))
    little = mutated('00a_data', '00a.2', 'idx_header', "'>{ndim}I'", "'<{ndim}I'")
    failing(run_check('00a.2', little), 'big-endian')
    three = mutated('00a_data', '00a.2', 'idx_header', 'code, ndim = raw[2], raw[3]', 'code, ndim = raw[2], 3')
    failing(run_check('00a.2', three), 'fourth byte')
    trusting = mutated('00a_data', '00a.2', 'idx_header', 'if raw[0] != 0 or raw[1] != 0: raise', 'if False: raise')
    failing(run_check('00a.2', trusting), 'first two bytes must be zero')
    def no_checks(raw): return raw[2], struct.unpack(f'>{raw[3]}I', raw[4:4 + 4 * raw[3]])
    failing(run_check('00a.2', no_checks), 'raise ValueError')
    failing(run_check('00a.2', lambda raw: (8, (2, 28, 28))))


def test_00a_sha256_stream_mistakes_and_a_hard_coded_answer():
    correct(run_check('00a.3', solved('00a_data', '00a.3')['sha256_stream']))
    def per_chunk(f, chunk_size=1 << 20):
        digest = hashlib.sha256(b'').hexdigest()
        while chunk := f.read(chunk_size): digest = hashlib.sha256(chunk).hexdigest()   # a fresh hash each time
        return digest
    failing(run_check('00a.3', per_chunk), 'one hash object')
    def full_chunks(f, chunk_size=1 << 20):
        h = hashlib.sha256()
        while len(chunk := f.read(chunk_size)) == chunk_size: h.update(chunk)
        return h.hexdigest()
    failing(run_check('00a.3', full_chunks), "returns b''")
    failing(run_check('00a.3', mutated('00a_data', '00a.3', 'sha256_stream', 'h.hexdigest()', 'h.digest()')), 'hexdigest()')
    failing(run_check('00a.3', lambda f, chunk_size=1 << 20: hashlib.sha256(f.read()).hexdigest()), 'at most chunk_size')
    failing(run_check('00a.3', lambda f, chunk_size=1 << 20: hashlib.file_digest(f, 'sha256').hexdigest()), 'write the loop')
    failing(run_check('00a.3', lambda f, chunk_size=1 << 20: hashlib.sha256(b'').hexdigest()))


def test_00a_read_idx_bytes_mistakes_and_a_hard_coded_answer():
    correct(run_check('00a.4', solved('00a_data', '00a.2', '00a.4')['read_idx_bytes']))
    native = mutated('00a_data', '00a.4', 'read_idx_bytes', 'items.flip(1).contiguous()', 'items.contiguous()')
    failing(run_check('00a.4', native), 'big-endian')
    bytes_not_items = mutated('00a_data', '00a.4', 'read_idx_bytes', 'if len(payload) != n * size:', 'if len(payload) != n:')
    failing(run_check('00a.4', bytes_not_items), 'items of the type')
    unsized = mutated('00a_data', '00a.4', 'read_idx_bytes', 'if len(payload) != n * size:', 'if False:')
    failing(run_check('00a.4', unsized), 'raise ValueError')
    unsigned = mutated('00a_data', '00a.4', 'read_idx_bytes', '0x09: torch.int8', '0x09: torch.uint8')
    failing(run_check('00a.4', unsigned), '0x09 signed byte')
    failing(run_check('00a.4', lambda raw: torch.zeros(2, 28, 28, dtype=torch.uint8)))


# ---- 07_batchnorm ----

def test_07_tiny_batch_predictions():
    answer = solved('07_batchnorm', '07.1')['tiny_batches']
    correct(run_check('07.1', answer))
    keys = list(answer)
    failing(run_check('07.1', answer | {keys[0]: (1, 4)}), 'variance of one value')
    failing(run_check('07.1', answer | {keys[1]: 'error'}), 'running statistics')
    failing(run_check('07.1', answer | {keys[4]: 0.9}), 'weight of the *new* value')
    failing(run_check('07.1', answer | {keys[3]: 0.5}), 'halfway')


def test_07_batchnorm_forward_mistakes_and_a_hard_coded_answer():
    correct(run_check('07.2', solved('07_batchnorm', '07.2')['batchnorm_forward']))
    def variant(old, new): return mutated('07_batchnorm', '07.2', 'batchnorm_forward', old, new)
    failing(run_check('07.2', variant('unbiased=False', 'unbiased=True')), 'biased variance')
    failing(run_check('07.2', variant('(0, 2, 3), keepdim=True', '(1, 2, 3), keepdim=True')), 'LayerNorm')
    failing(run_check('07.2', variant('(0, 2, 3), keepdim=True', '0, keepdim=True')), 'each pixel')
    failing(run_check('07.2', variant('(var + eps).sqrt()', '(var.sqrt() + eps)')), 'inside the square root')
    failing(run_check('07.2', variant('mean = x.mean((0, 2, 3), keepdim=True)', 'mean = x.mean((0, 2, 3), keepdim=True).detach()')),
            'part of the graph')
    failing(run_check('07.2', variant('return xhat * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)', 'return xhat')), 'scaled and shifted')
    failing(run_check('07.2', variant('return xhat * weight.view(1, -1, 1, 1)', 'return xhat * weight')), 'view weight and bias')
    failing(run_check('07.2', lambda x, weight, bias, eps=1e-5: F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)), 'uses')
    fixed = torch.zeros(8, 3, 5, 5, dtype=torch.float64)
    failing(run_check('07.2', lambda x, weight, bias, eps=1e-5: fixed))


def test_07_update_running_mistakes_and_a_hard_coded_answer():
    correct(run_check('07.3', solved('07_batchnorm', '07.3')['update_running']))
    def variant(old, new): return mutated('07_batchnorm', '07.3', 'update_running', old, new)
    backwards = variant('(1 - momentum) * running_mean + momentum * mean', 'momentum * running_mean + (1 - momentum) * mean')
    failing(run_check('07.3', backwards), 'weight of the *new* batch value')
    failing(run_check('07.3', variant('var * m / (m - 1)', 'var')), '*unbiased*')
    failing(run_check('07.3', variant('return new_mean, new_var', 'running_mean.copy_(new_mean)')), 'return')
    failing(run_check('07.3', lambda running_mean, running_var, x, momentum=0.1: (torch.zeros(3), torch.ones(3))))


def test_07_group_norm_mistakes_and_a_hard_coded_answer():
    correct(run_check('07.4', solved('07_batchnorm', '07.4')['group_norm']))
    def interleaved(x, num_groups, weight, bias, eps=1e-5):
        n, c = x.shape[:2]
        xg = x.reshape(n, c // num_groups, num_groups, -1).transpose(1, 2)   # channel k in group k % G
        mean, var = xg.mean((2, 3), keepdim=True), xg.var((2, 3), keepdim=True, unbiased=False)
        xhat = ((xg - mean) / (var + eps).sqrt()).transpose(1, 2).reshape(x.shape)
        shape = (1, c) + (1,) * (x.ndim - 2)
        return xhat * weight.view(shape) + bias.view(shape)
    failing(run_check('07.4', interleaved), 'consecutive')
    def variant(old, new): return mutated('07_batchnorm', '07.4', 'group_norm', old, new)
    failing(run_check('07.4', variant('xg.mean(-1, keepdim=True), xg.var(-1, keepdim=True,', 'xg.mean((0, 2), keepdim=True), xg.var((0, 2), keepdim=True,')),
            'on its own')
    failing(run_check('07.4', variant('unbiased=False', 'unbiased=True')), 'biased variance')
    failing(run_check('07.4', lambda x, num_groups, weight, bias, eps=1e-5: F.group_norm(x, num_groups, weight, bias, eps)), 'uses')
    failing(run_check('07.4', lambda x, num_groups, weight, bias, eps=1e-5: torch.zeros(4, 6, 5, 5, dtype=torch.float64)))


# ---- 09_resnet ----

def test_09_block_count_predictions():
    answer = solved('09_resnet', '09.1')['resblock_counts']
    correct(run_check('09.1', answer))
    keys = list(answer)
    failing(run_check('09.1', answer | {keys[0]: answer[keys[0]] + 2 * 32}), "conv's bias")
    failing(run_check('09.1', answer | {keys[0]: answer[keys[0]] + 4 * 32}), 'buffers')
    failing(run_check('09.1', answer | {keys[1]: answer[keys[1]] - 32 * 64 - 2 * 64}), '1x1 conv')
    failing(run_check('09.1', answer | {keys[2]: (8, 64, 3, 3)}), 'rounding up')
    failing(run_check('09.1', answer | {keys[3]: 0.5}), 'quadruples')


def test_09_shortcut_mistakes_and_a_hard_coded_answer():
    ns = solved('09_resnet', '09.2')
    correct(run_check('09.2', ns['make_shortcut']))
    def variant(old, new): return mutated('09_resnet', '09.2', 'make_shortcut', old, new)
    failing(run_check('09.2', variant('nn.AvgPool2d(stride, ceil_mode=True)', 'nn.AvgPool2d(stride)')), 'ceil_mode=True')
    failing(run_check('09.2', variant('nn.AvgPool2d(stride, ceil_mode=True)', 'nn.MaxPool2d(stride, ceil_mode=True)')), 'not its maximum')
    failing(run_check('09.2', variant('if ni != nf: layers.append', 'layers.append')), 'no conv on the shortcut')
    failing(run_check('09.2', variant('ks=1', 'ks=3')), 'conv is 1x1')
    conv_norm = ns['conv_norm']
    def strided(ni, nf, stride=1):   # a strided 1x1 conv in place of pool + conv
        if ni != nf: return conv_norm(ni, nf, ks=1, stride=stride, act=None)
        return nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity()
    failing(run_check('09.2', strided), 'one pixel in four')
    failing(run_check('09.2', lambda ni, nf, stride=1: nn.Identity()))


def test_09_random_erase_mistakes_and_a_hard_coded_answer():
    correct(run_check('09.3', solved('09_resnet', '09.3')['random_erase']))
    def variant(old, new): return mutated('09_resnet', '09.3', 'random_erase', old, new)
    failing(run_check('09.3', variant('h - size + 1', 'h - size')), 'upper bound is exclusive')
    failing(run_check('09.3', variant('(n,), generator', '(1,), generator')), 'its own corner')
    failing(run_check('09.3', variant(', generator=generator)', ')')), 'from `generator`')
    failing(run_check('09.3', variant('x.masked_fill(mask, fill)', 'x.masked_fill_(mask, fill)')), 'in place')
    def looped(x, size, fill=0., generator=None):
        out = x.clone()
        for i in range(len(x)): out[i, :, :size, :size] = fill
        return out
    failing(run_check('09.3', looped), 'Python loop')
    failing(run_check('09.3', lambda x, size, fill=0., generator=None: x))


def test_09_challenge_refuses_and_reports_its_numbers():
    from exp.nb_09 import get_resnet
    g = torch.Generator().manual_seed(0)
    xb, yb = torch.randn(64, 1, 28, 28, generator=g), torch.zeros(64, dtype=torch.long)
    dls = SimpleNamespace(valid=[(xb[:40], yb[:40]), (xb[40:], yb[40:])])
    failing(run_check('09.4', get_resnet((16, 32, 64, 256)), dls), 'over the budget')
    failing(run_check('09.4', 'my model', dls), 'nn.Module')
    failing(run_check('09.4', get_resnet(), None), 'DataLoaders')
    always_zero = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))   # predicts class 0 for every image: right on this fake set
    with torch.no_grad(): always_zero[1].weight.zero_(); always_zero[1].bias.copy_(torch.arange(10.).flip(0))
    r = correct(run_check('09.4', always_zero, dls))
    assert (r.number, r.reference) == (1.0, 0.8388) and 'one epoch' in r.budget
    always_one = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad(): always_one[1].weight.zero_(); always_one[1].bias.copy_(torch.eye(10)[1])
    r = failing(run_check('09.4', always_one, dls), '0.8388', 'schedule of its own')
    assert r.number is None


@pytest.mark.parametrize('id', ['00a.2', '00a.3', '00a.4', '07.2', '07.3', '07.4', '09.2', '09.3'])
def test_a_function_that_returns_nothing_is_told_so(id):
    failing(run_check(id, lambda *args, **kwargs: None), 'returned None', 'without `return`')
