//! Diffusion decoding runtime.
