"""The operations of a CNN, each a forward pass and its hand-derived backward pass.

Every ``*_forward(...)`` returns ``(output, cache)``; the mirrored
``*_backward(doutput, cache)`` returns the gradients of the inputs, in input
order. Losses return ``(loss, dprediction)``. Arrays are NCHW, weights laid out
as PyTorch's; the array namespace (NumPy, CuPy, ...) is taken from the inputs.
Modules follow the book: convolution, pooling, activations, dense layers,
losses, batch normalization, dropout. These are the reference definitions the
chapters show; ``cnnbook.functional._fast`` holds the faster kernels the layers
run, tested equal to them.
"""

from cnnbook.functional import (  # the modules, for their __all__
    activation,
    conv,
    dropout,
    linear,
    loss,
    norm,
    pool,
)
from cnnbook.functional.activation import (
    elu_backward,
    elu_forward,
    erf,
    gelu_backward,
    gelu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    tanh_backward,
    tanh_forward,
)
from cnnbook.functional.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_naive,
    conv_output_size,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    im2col,
)
from cnnbook.functional.dropout import dropout_backward, dropout_forward
from cnnbook.functional.linear import linear_backward, linear_forward
from cnnbook.functional.loss import (
    log_softmax,
    mse_loss,
    softmax,
    softmax_cross_entropy,
)
from cnnbook.functional.norm import (
    batch_norm_backward,
    batch_norm_forward,
    group_norm_backward,
    group_norm_forward,
    layer_norm_backward,
    layer_norm_forward,
)
from cnnbook.functional.pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_indices,
)

# Everything the modules above export, in one sorted list.
__all__ = sorted(
    [
        *activation.__all__,
        *conv.__all__,
        *dropout.__all__,
        *linear.__all__,
        *loss.__all__,
        *norm.__all__,
        *pool.__all__,
    ]
)
