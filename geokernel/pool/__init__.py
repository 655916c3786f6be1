"""Pooled kernels: a warm "zygote" process that has imported gevent, IPython, jedi and the
kernel, and forks a fresh geokernel per connection file (`geokernel-pool` kernelspec).

- protocol.py: the messages between the provisioner and the zygote (JSON + passed fds)
- zygote.py: the zygote's loop (fork on request, reap children, die with its owner)
- warm.py: what the zygote imports and warms before it forks anything
- provisioner.py: the jupyter_client kernel provisioner that owns one zygote per environment
"""
