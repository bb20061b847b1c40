"""Where jobs run: the local machine and the batch schedulers."""
