"""Network definitions (PyTorch): SiamRPN with BN-AlexNet and depthwise RPN head, DarkLighter.

Shared by the torch backend, the exporters and the training package. Importing this
package imports torch.
"""

from mlkd_tracker.nets.darklighter import DarkLighter
from mlkd_tracker.nets.siamrpn import AlexNet, DepthwiseRPN, DepthwiseXCorr, SiamRPN, xcorr_depthwise

__all__ = ["AlexNet", "DarkLighter", "DepthwiseRPN", "DepthwiseXCorr", "SiamRPN", "xcorr_depthwise"]
