"""Pure rendering: desired state + facts -> the bytes of every generated file."""
