"""The first generator backend: a class-conditional 3D GAN whose discriminator is trained with DP-SGD."""
