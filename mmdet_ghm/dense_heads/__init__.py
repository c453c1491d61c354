from .ghm_retina_head import GHMRetinaHead

__all__ = ['GHMRetinaHead']
