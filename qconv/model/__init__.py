"""The model layer: which llama.cpp architecture a checkpoint is, its tensors' GGUF names and
transforms, and the hyperparameters llama.cpp's converter writes for it."""
