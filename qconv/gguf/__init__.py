"""The GGUF file format: constants, metadata values, the header reader, the writer, `qconv info`."""
