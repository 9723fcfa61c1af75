"""Face toolkit for real photos: detect -> align -> (restore) -> paste back, plus identity tools.

Inside ``faces`` images are uint8 RGB arrays (H, W, 3); embedders take model tensors
[B, 3, H, W] in [-1, 1]. See docs/faces.md.
"""
from .align import FFHQ_TEMPLATE_5_512, AlignedFace, align_face, align_faces, ffhq_quad, template_points
from .detect import Face, aligned_landmarks, dense_landmarks, detect_faces
from .identity import (DlibEmbedder, FaceEmbedder, OnnxEmbedder, TorchEmbedder, cosine_distance,
                       cosine_similarity, load_embedder)
from .mask import face_polygon, polygon_mask
from .paste import paste_face, paste_face_masked, paste_faces, soft_mask
from .select import ReferenceScore, SelectionWeights, select_references
from .verify import ReferenceMismatchError, VerificationReport, verify_references

__all__ = [
    "FFHQ_TEMPLATE_5_512", "AlignedFace", "align_face", "align_faces", "ffhq_quad", "template_points",
    "Face", "aligned_landmarks", "dense_landmarks", "detect_faces",
    "DlibEmbedder", "FaceEmbedder", "OnnxEmbedder", "TorchEmbedder", "cosine_distance", "cosine_similarity",
    "load_embedder", "face_polygon", "polygon_mask", "paste_face", "paste_face_masked", "paste_faces", "soft_mask",
    "ReferenceScore", "SelectionWeights",
    "select_references", "ReferenceMismatchError", "VerificationReport", "verify_references",
]
