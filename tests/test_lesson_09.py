"""The checks of 09_resnet that are a test suite rather than a lesson: the augmentations' edge cases and statistics,
`BatchTransformCB` touching training batches only, and the ResNet's exact sizes (the notebook keeps one
representative check of each)."""
from types import SimpleNamespace

import pytest, torch
import torch.nn.functional as F
from torch import nn

from exp.nb_09 import BatchTransformCB, ResBlock, augment, get_resnet, random_crop, random_flip


def n_params(module): return sum(p.numel() for p in module.parameters())


# ---- random_crop ----

def test_crop_without_padding_is_the_identity():
    x = torch.randn(5, 3, 6, 4)
    assert torch.equal(random_crop(x, pad=0, generator=torch.Generator().manual_seed(0)), x)


def test_crop_draws_rows_then_columns_from_the_generator():
    x = torch.arange(4 * 2 * 5 * 6, dtype=torch.float32).view(4, 2, 5, 6)
    out = random_crop(x, pad=1, fill=-7., generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    oy, ox = torch.randint(0, 3, (4,), generator=g), torch.randint(0, 3, (4,), generator=g)
    padded = F.pad(x, (1, 1, 1, 1), value=-7.)
    for i in range(4): assert torch.equal(out[i], padded[i, :, oy[i]:oy[i] + 5, ox[i]:ox[i] + 6])


def test_crop_offsets_cover_every_shift_about_equally():
    pad, n = 2, 5000
    x = torch.zeros(n, 1, 7, 7)
    x[:, :, 3, 3] = 1.                                      # one bright pixel in the centre: where it lands is the shift
    out = random_crop(x, pad=pad, generator=torch.Generator().manual_seed(0))
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 7 - 3, where % 7 - 3
    assert rows.min() == cols.min() == -pad and rows.max() == cols.max() == pad
    counts = torch.bincount((rows + pad) * (2 * pad + 1) + cols + pad, minlength=(2 * pad + 1) ** 2).float()
    assert counts.numel() == 25 and (counts / n - 1 / 25).abs().max() < 0.015


def test_crop_fills_with_the_given_value_and_keeps_the_dtype():
    x = torch.ones(50, 1, 4, 4, dtype=torch.float64)
    out = random_crop(x, pad=3, fill=-2.5, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert set(out.unique().tolist()) == {-2.5, 1.0}
    assert (out == 1.).sum(dim=(1, 2, 3)).min() >= 1       # a shift of at most 3 leaves part of a 4x4 image


# ---- random_flip ----

def test_flip_mirrors_exactly_the_images_whose_draw_is_below_p():
    x = torch.randn(4000, 1, 2, 3)
    out = random_flip(x, p=0.5, generator=torch.Generator().manual_seed(1))
    flip = torch.rand(4000, generator=torch.Generator().manual_seed(1)) < 0.5
    assert torch.equal(out[flip], x[flip].flip(-1)) and torch.equal(out[~flip], x[~flip])
    assert abs(flip.float().mean().item() - 0.5) < 0.03


@pytest.mark.parametrize('p, expected', [(0., 'none'), (1., 'all')])
def test_flip_probability_extremes(p, expected):
    x = torch.randn(30, 2, 3, 3)
    out = random_flip(x, p=p, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, x if expected == 'none' else x.flip(-1))


def test_augment_keeps_shape_and_never_flips_vertically():
    x = torch.zeros(200, 1, 6, 6)
    x[:, :, 0, :] = 1.                                       # a bright top row stays near the top whatever happens
    torch.manual_seed(0)
    out = augment(x, pad=1, fill=0.)
    assert out.shape == x.shape
    assert out[:, 0, :2].sum() == out.sum() and out.sum() > 0


# ---- BatchTransformCB ----

@pytest.mark.parametrize('on_train, on_valid', [(True, False), (False, True), (True, True), (False, False)])
def test_batch_transform_touches_only_the_chosen_phase(on_train, on_valid):
    cb = BatchTransformCB(lambda x: x + 100, on_train=on_train, on_valid=on_valid)
    for training, applies in ((True, on_train), (False, on_valid)):
        xb, yb = torch.zeros(3, 1, 2, 2), torch.tensor([1, 2, 3])
        cb.learn = SimpleNamespace(training=training, batch=(xb, yb))
        cb.before_batch()
        new_x, new_y = cb.learn.batch
        assert torch.equal(new_x, xb + 100 if applies else xb) and new_y is yb


def test_batch_transform_runs_after_the_device_callback():
    from exp.nb_09 import DeviceCB
    assert BatchTransformCB.order == DeviceCB.order + 1


# ---- the ResNet's sizes ----

def test_resnet_parameter_counts():
    assert n_params(get_resnet()) == 304_122
    assert n_params(ResBlock(32, 32)) == 2 * (32 * 32 * 9 + 2 * 32)
    assert n_params(ResBlock(32, 64, stride=2)) == (32 * 64 * 9 + 128) + (64 * 64 * 9 + 128) + (32 * 64 + 128)


@pytest.mark.parametrize('size, expected', [(28, 4), (7, 1), (9, 2), (1, 1)])
def test_resnet_shrinks_the_image_like_its_convs(size, expected):
    net = get_resnet()
    body = net[:-3]                                          # before the global pool, flatten and linear head
    assert body(torch.randn(2, 1, size, size)).shape == (2, 128, expected, expected)
    assert net(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_resblock_shortcut_layers():
    assert isinstance(ResBlock(8, 8).idconv, nn.Identity) and isinstance(ResBlock(8, 8).pool, nn.Identity)
    block = ResBlock(8, 16, stride=2)
    assert isinstance(block.pool, nn.AvgPool2d) and block.pool.ceil_mode
    assert block.idconv[0].kernel_size == (1, 1)
