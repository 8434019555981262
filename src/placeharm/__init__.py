"""placeharm: serious and organised crime harm by place."""
