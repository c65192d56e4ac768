# Reference solutions for the exercises of nbs/09_resnet.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 09.1
resblock_counts = {
    'ResBlock(32, 32): parameters': 2 * (32 * 32 * 9 + 2 * 32),            # two 3x3 convs (no bias), two BatchNorms
    'ResBlock(32, 64, stride=2): parameters': (32 * 64 * 9 + 2 * 64) + (64 * 64 * 9 + 2 * 64) + (32 * 64 + 2 * 64),   # + the 1x1 shortcut
    'ResBlock(32, 64, stride=2) on an (8, 32, 7, 7) batch: output shape': (8, 64, 4, 4),   # 7 -> 4: rounded up
    "share of get_resnet()'s parameters in its last ResBlock (64 -> 128), to 2 decimals":
        round(((64 * 128 * 9 + 256) + (128 * 128 * 9 + 256) + (64 * 128 + 256)) / 304_122, 2),
}

# %% exercise 09.2
def make_shortcut(ni, nf, stride=1):
    "The identity path of a ResBlock from `ni` to `nf` channels: pool if it strides, 1x1 conv if the channels change."
    layers = []
    if stride != 1: layers.append(nn.AvgPool2d(stride, ceil_mode=True))    # ceil: 7 pixels give 4, like the 3x3 conv
    if ni != nf: layers.append(conv_norm(ni, nf, ks=1, stride=1, act=None))   # pool first: the conv then reads 4x fewer pixels
    return nn.Sequential(*layers) if layers else nn.Identity()          # nothing to change: x itself, no parameters

# %% exercise 09.3
def random_erase(x, size, fill=0., generator=None):
    "Fill a `size` x `size` square at a random place inside each image of an (N, C, H, W) batch with `fill`."
    n, c, h, w = x.shape
    top = torch.randint(0, h - size + 1, (n,), generator=generator)    # the high end is exclusive: + 1
    left = torch.randint(0, w - size + 1, (n,), generator=generator)
    in_rows = (torch.arange(h) >= top[:, None]) & (torch.arange(h) < top[:, None] + size)      # (n, h)
    in_cols = (torch.arange(w) >= left[:, None]) & (torch.arange(w) < left[:, None] + size)    # (n, w)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]        # (n, 1, h, w): the same in every channel
    return x.masked_fill(mask, fill)                                    # a new tensor; x is left as it was

# %% exercise 09.4
# The notebook's recipe, with the whole one-cycle schedule fitted into one epoch, and no augmentation: in a run this
# short the network underfits, so harder training images would only slow it down.
my_epochs, my_lr = pick(1, QUICK_EPOCHS), 1e-2
set_seed()
my_model = init_cnn(get_resnet())
my_learn = Learner(my_model, dls, lr=my_lr, opt_func=partial(adamw, wd=1e-2),
                   cbs=[DeviceCB(), MetricsCB(accuracy=accuracy), *one_cycle(my_lr, mom_name='beta1')]).fit(my_epochs)
