# Reference solutions for the exercises of nbs/04_callbacks.ipynb.
# Each `# %% exercise ID` section replaces that exercise's starter cell (`run_notebook.py --solutions`).
# Try the exercise first: the check under it tells you what is wrong without giving the answer away.

# %% exercise 04.1
batch_cancel = {
    # the raise leaves _do_batch at once; _stage catches it, calls after_cancel_batch, then after_batch as always
    'events of one training batch, in order': ['before_batch', 'after_predict', 'after_loss', 'after_cancel_batch', 'after_batch'],
    "times 'after_batch' fires in the fit": 3,         # the 2 cancelled training batches and the validation batch
    "times 'after_cancel_batch' fires in the fit": 2,  # the callback leaves validation alone
    'the validation pass runs': True,                   # a batch's exception ends that batch only
    'the fit changes the weights': False,               # no backward pass, no step
}

# %% exercise 04.2
epoch_cancel = {
    # CancelEpochException passes through the batch stage (no after_batch) and the training pass (no after_train);
    # the epoch stage catches it
    'events of the first epoch, in order': ['before_epoch', 'before_train', 'before_batch', 'after_predict', 'after_loss',
                                            'after_backward', 'after_step', 'after_cancel_epoch', 'after_epoch'],
    "times 'after_batch' fires in the fit": 0,
    "times 'before_validate' fires in the fit": 0,     # validation is part of the epoch that was cancelled
    'optimizer steps in the fit': 2,                   # one per epoch
    'batches whose gradients the second step uses': 2, # zero_grad comes after after_step, so it was skipped:
}                                                      # the first epoch's gradient is still there

# %% exercise 04.3
class ShortEpochsCB(Callback):
    "Train on only the first `n_batches` training batches of each epoch; validate on the whole validation set."
    def __init__(self, n_batches): self.n_batches = n_batches

    def before_batch(self):
        # Cancelling the batch (not the epoch) keeps the validation pass; doing it before the forward pass means a
        # skipped batch costs nothing and leaves no gradient behind. learn.iter restarts at 0 each epoch.
        if self.learn.training and self.learn.iter >= self.n_batches: raise CancelBatchException()

# %% exercise 04.4
class GradAccumCB(Callback):
    "Step the optimizer once every `n` training batches, with the mean of their gradients: like a batch n times bigger."
    def __init__(self, n): self.n = n

    def after_backward(self):
        # Not the n-th batch yet: skip the step and zero_grad, so the next backward pass adds to this gradient.
        if (self.learn.iter + 1) % self.n: raise CancelBatchException()
        # The n-th: the gradients are a sum of n batch means; divide for the mean of one batch n times bigger.
        # (Scaling the gradients, not learn.loss, keeps the loss that MetricsCB and Recorder report honest.)
        for p in self.learn.model.parameters():
            if p.grad is not None: p.grad /= self.n
