"""The claims the lesson cells of 16_gpt rest on, beyond the notebook's one case each: the lecture's edit of batch norm
is LayerNorm; cross-attention (and the encoder's unmasked attention) equals nn.MultiheadAttention; the table's rows have
the shapes the text gives them and its last model is the GPT; the sequences of a batch never affect each other (and
batch norm would break that); the lecture's loop and GPTTrainer take the same steps; no machine path in the saved
outputs. The notebook's own classes and functions are read from the notebook itself, so the tests follow it. Each check
is also shown to fail on a wrong answer."""
import ast, json, re

import pytest, torch
from torch import nn

from conftest import ROOT

NB = ROOT / 'nbs' / '16_gpt.ipynb'


def notebook_defs(*names, **extra):
    "The notebook's own (not exported) classes and functions `names`, defined in that order over exp.nb_16's names."
    import exp.nb_16 as stack
    cells = [''.join(c['source']) for c in json.loads(NB.read_text())['cells'] if c['cell_type'] == 'code']
    found = {node.name: node for src in cells if not src.startswith('#export') for node in ast.parse(src).body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names}
    assert set(found) == set(names), f"not in the notebook: {set(names) - set(found)}"
    ns = {k: v for k, v in vars(stack).items() if not k.startswith('__')} | extra
    for name in names: exec(compile(ast.Module([found[name]], []), f'16_gpt:{name}', 'exec'), ns)
    return ns


def perturbed(model, scale=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


# ---- LayerNorm is batch norm along the other axis ----

@pytest.mark.parametrize('shape', [(32, 100), (1, 7), (4, 8, 32), (2, 3, 5, 16)])
def test_the_lecture_edit_of_batch_norm_is_layer_norm(shape):
    RowNorm = notebook_defs('RowNorm')['RowNorm']
    x = torch.randn(shape, generator=torch.Generator().manual_seed(shape[-1]), dtype=torch.float64) * 3 + 1
    norm, ref = RowNorm(shape[-1]).double(), nn.LayerNorm(shape[-1]).double()
    with torch.no_grad():
        for m in (norm, ref): m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-1, 1)
        ref.weight.copy_(norm.weight); ref.bias.copy_(norm.bias)
        torch.testing.assert_close(norm(x), ref(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(norm.eval()(x), norm.train()(x))
    assert list(norm.buffers()) == []


def test_batch_norm_normalises_the_columns_and_the_edit_the_rows():
    from exp.nb_07 import BatchNorm
    RowNorm = notebook_defs('RowNorm')['RowNorm']
    x = torch.randn(32, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1
    with torch.no_grad():
        columns, rows = BatchNorm(100).double()(x), RowNorm(100).double()(x)
    assert columns.mean(0).abs().max() < 1e-9 and columns.mean(1).abs().max() > 0.05   # columns, not rows
    assert rows.mean(1).abs().max() < 1e-9 and rows.mean(0).abs().max() > 0.05          # rows, not columns
    assert not torch.allclose(columns, nn.LayerNorm(100).double()(x), atol=1e-3)          # the check can fail


# ---- decoder, encoder, cross-attention ----

@pytest.mark.parametrize('B, T, S, C, n_head', [(3, 5, 9, 16, 4), (1, 1, 4, 8, 2), (2, 6, 6, 12, 3), (2, 7, 2, 8, 1)])
def test_cross_attention_equals_nn_multihead_attention(B, T, S, C, n_head):
    cross_attention = notebook_defs('cross_attention')['cross_attention']
    g = torch.Generator().manual_seed(T * S)
    x, context = torch.randn(B, T, C, generator=g, dtype=torch.float64), torch.randn(B, S, C, generator=g, dtype=torch.float64)
    w = [torch.randn(C, C, generator=g, dtype=torch.float64) / C ** 0.5 for _ in range(4)]
    mha = nn.MultiheadAttention(C, n_head, bias=False, batch_first=True).double()
    with torch.no_grad(): mha.in_proj_weight.copy_(torch.cat(w[:3])); mha.out_proj.weight.copy_(w[3])
    ours, wei = cross_attention(x, context, *w, n_head)
    torch.testing.assert_close(ours, mha(x, context, context, need_weights=False)[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(wei.mean(1), mha(x, context, context)[1], rtol=1e-9, atol=1e-9)   # its weights, averaged over heads
    encoder, _ = cross_attention(x, x, *w, n_head)
    torch.testing.assert_close(encoder, mha(x, x, x, need_weights=False)[0], rtol=1e-9, atol=1e-9)
    if T > 1:   # the decoder's mask changes the answer: the comparison can fail
        causal = nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
        assert not torch.allclose(encoder, mha(x, x, x, attn_mask=causal, need_weights=False)[0], atol=1e-6)


# ---- the table's rows ----

def lecture_models():
    ns = notebook_defs('Head', 'MultiHeadAttention', 'SmallLM', 'LectureBlock', 'gpt_from_lecture_model')
    blocks = lambda **kw: [ns['LectureBlock'](32, 4, **kw) for _ in range(3)]
    return ns, {'no residual': ns['SmallLM'](nn.Sequential(*blocks(residual=False))),
                'residual': ns['SmallLM'](nn.Sequential(*blocks())),
                'layernorm': ns['SmallLM'](nn.Sequential(*blocks(norm=True), ns['LayerNorm'](32)))}


def test_the_rows_have_the_shapes_the_text_gives_them():
    "No residual: heads without a projection and a 1x feed-forward; + residual: a projection and a 4x feed-forward."
    torch.manual_seed(0)
    ns, models = lecture_models()
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    around = 65 * 32 + 8 * 32 + 32 * 65 + 65                           # the two tables and the output layer
    heads = 3 * 32 * 32                                                # query, key and value of 4 heads of 8, no biases
    assert sizes['no residual'] == around + 3 * (heads + 32 * 32 + 32) == 16_865
    assert sizes['residual'] == around + 3 * (heads + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32) == 41_921
    assert sizes['layernorm'] == sizes['residual'] + 3 * 2 * 64 + 64 == 42_369
    x = torch.randn(2, 8, 32)
    block = models['no residual'].body[0]
    with torch.no_grad(): assert torch.allclose(block(x), block.ffwd(block.sa(x)))   # nothing added back
    block = models['residual'].body[0]
    with torch.no_grad():
        h = x + block.sa(x)
        assert torch.allclose(block(x), h + block.ffwd(h), atol=1e-6)


def test_the_tables_last_model_is_the_gpt():
    torch.manual_seed(1)
    ns, models = lecture_models()
    small = perturbed(models['layernorm']).eval()
    gpt = ns['gpt_from_lecture_model'](small)
    idx = torch.randint(65, (3, 8))
    with torch.no_grad():
        torch.testing.assert_close(gpt(idx)[0], small(idx)[0], rtol=1e-5, atol=1e-5)
        small.body[1].ffwd[2].weight[0, 0] += 0.5                       # one weight changed: the logits differ
        assert not torch.allclose(gpt(idx)[0], small(idx)[0], atol=1e-4)
    with pytest.raises(Exception):                                     # the residual model has no LayerNorms to copy
        ns['gpt_from_lecture_model'](models['residual'])


# ---- the sequences of a batch never talk to each other ----

class TokenBatchNorm(nn.Module):
    def __init__(self, n): super().__init__(); self.bn = nn.BatchNorm1d(n)
    def forward(self, x): return self.bn(x.reshape(-1, x.size(-1))).view(x.shape)


@pytest.mark.parametrize('fused', [False, True])
def test_changing_one_sequence_leaves_the_others_logits(fused):
    from exp.nb_16 import GPT, GPTConfig
    torch.manual_seed(2)
    gpt = perturbed(GPT(GPTConfig(vocab_size=30, block_size=10, n_layer=2, n_head=2, n_embd=16, dropout=0., fused=fused)).double())
    idx = torch.randint(30, (5, 10))
    other = idx.clone(); other[3] = (other[3] + 1) % 30
    with torch.no_grad():
        a, b = gpt(idx)[0], gpt(other)[0]
        keep = [0, 1, 2, 4]
        torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=1e-12)
        assert (a[3] - b[3]).abs().amax(-1).min() > 1e-6                 # every position of the changed row moved
        for i in range(5): torch.testing.assert_close(gpt(idx[i:i + 1])[0][0], a[i], rtol=0, atol=1e-12)
        for blk in gpt.blocks: blk.ln1, blk.ln2 = TokenBatchNorm(16).double(), TokenBatchNorm(16).double()
        a, b = gpt(idx)[0], gpt(other)[0]                                # batch statistics: every row moves
        assert ((a - b).abs().amax(-1) > 1e-9).all()


# ---- the lecture's loop and the trainer ----

def test_the_loop_and_the_trainer_take_the_same_steps():
    from exp.nb_16 import GPTTrainer, TrainConfig, init_gpt_weights, split_data
    data = torch.randint(20, (3000,), generator=torch.Generator().manual_seed(0))
    train_data, val_data = split_data(data)
    ns = notebook_defs('BigramLM', 'train_lm', train_data=train_data, splits={'train': train_data, 'val': val_data},
                       pick=lambda full, quick: 2)
    torch.manual_seed(0)
    a, b = init_gpt_weights(ns['BigramLM'](20)), ns['BigramLM'](20)
    b.load_state_dict(a.state_dict())
    ns['train_lm'](a, 1e-2, 30)
    tc = TrainConfig(batch_size=32, max_iters=30, lr=1e-2, min_lr=1e-2, lr_decay_iters=30, eval_interval=30, eval_iters=1)
    GPTTrainer(b, tc, {'train': train_data, 'val': val_data}, block_size=8).fit(30, log=None, bar=False)
    assert torch.equal(a.table.weight, b.table.weight)
    GPTTrainer(b, TrainConfig(**{**tc.__dict__, 'seed': 7}), {'train': train_data}, 8).fit(1, log=None, bar=False)
    assert not torch.equal(a.table.weight, b.table.weight)              # one more step: the comparison can fail


# ---- the saved notebook ----

def test_no_machine_path_in_the_saved_outputs():
    "The outputs of a saved run name files relative to a folder, never by an absolute path of this machine."
    outputs = json.dumps([c.get('outputs', []) for c in json.loads(NB.read_text())['cells']])
    assert re.findall(r'(?:/tmp/|/home/|/root/|/work/|/Users/)[^\s"\\]*', outputs) == []
