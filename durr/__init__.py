"""DURR: restoration of CT and MR scans as a dynamical system with a learned stopping time.

Zhang, Lu, Liu, Dong, "Dynamically Unfolding Recurrent Restorer: a moving endpoint control
method for image restoration", ICLR 2019.
"""

__version__ = "0.1.0"
