"""nu-sets: one NeoMLP backbone for a dataset of signals, one latent set per signal.

The paper's second half (Kofinas et al., Algorithms 1 and 2), kept apart from
the single-clip codec:

* :mod:`.data`     - datasets of same-shaped signals (digits, MNIST, CIFAR-10,
  image folders, folders of sounds or clips) as one :class:`~.data.SignalSet`;
* :mod:`.field`    - the set field: a backbone plus a latent table indexed by signal;
* :mod:`.fit`      - Algorithm 1 (backbone + latents on a dataset) and
  Algorithm 2 (latents of new signals, backbone frozen, many at once);
* :mod:`.classify` - an MLP on the flattened latents (the nu-reps).
"""
