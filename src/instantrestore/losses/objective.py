"""The full training objective, paper eq. 8: L = L_rec (eq. 3) + lambda_LAS * L_LAS (eq. 7).

L_rec = lambda_MSSIM * L_MSSIM + lambda_LPIPS * L_LPIPS + lambda_ID * L_ID + lambda_GAN * L_GAN,
plus the optional L1 / L2 and HonestFace's masked face alignment. Terms with weight 0 are never
computed, and a term whose weight is > 0 but whose component is missing fails at construction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from .adversarial import Discriminator, discriminator_adversarial_loss, frozen, generator_adversarial_loss
from .masked_face_lpips import FaceAlignmentConfig, MaskedFaceAlignmentLoss
from .identity import IdentityLoss
from .config import LandmarkAttentionConfig, LossWeights, resolve_layers
from .landmark_attention import landmark_attention_loss
from .landmark_attention_official import official_landmark_attention_loss
from .reconstruction import LossUnavailable, LPIPSLoss, MSSSIMLoss, l1_loss, l2_loss

if TYPE_CHECKING:
    from ..generator.model import GeneratorOutput


class RestorationLoss(nn.Module):
    """Generator and discriminator objectives of InstantRestore.

    identity_network: frozen face recogniser (see IdentityLoss); needed when weights.identity > 0.
    discriminator: trained jointly with its own optimizer; needed when weights.adversarial > 0.
    lpips_net: an LPIPS module (pred, target) -> scalar; None builds ``LPIPSLoss(lpips_backbone)``
        when weights.lpips > 0 (or face alignment uses LPIPS), failing with a ValueError if it cannot.
    Keyword extras (not in eq. 8's weights): gan_loss ("non_saturating" | "hinge"),
    hard_example_reference ("mean" | "first"), face_alignment (FaceAlignmentConfig).
    """

    def __init__(self, weights: LossWeights = LossWeights(), identity_network: nn.Module | None = None,
                 discriminator: Discriminator | None = None, lpips_net: nn.Module | None = None,
                 landmark_attention: LandmarkAttentionConfig = LandmarkAttentionConfig(), *,
                 gan_loss: str = "non_saturating", hard_example_reference: str = "mean",
                 face_alignment: FaceAlignmentConfig = FaceAlignmentConfig(), lpips_backbone: str = "vgg"):
        super().__init__()
        for name, value in vars(weights).items():
            if value is not None and value < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {value}")
        self.weights = weights
        self.landmark_config = landmark_attention
        self.gan_loss = gan_loss
        generator_adversarial_loss(torch.zeros(1), gan_loss)  # validates the name early

        needs_lpips = weights.lpips > 0 or (weights.face_alignment > 0 and face_alignment.distance == "lpips")
        if needs_lpips and lpips_net is None:
            try:
                lpips_net = LPIPSLoss(lpips_backbone)
            except LossUnavailable as exc:
                which = "LossWeights(lpips=0.0)" if weights.lpips > 0 else "FaceAlignmentConfig(distance='l1')"
                raise ValueError(f"the LPIPS term cannot be built: {exc}. Pass lpips_net=..., or set {which}") from exc
        self.lpips = lpips_net if needs_lpips else None
        self.ms_ssim = MSSSIMLoss() if weights.ms_ssim > 0 else None

        if weights.identity > 0:
            if identity_network is None:
                raise ValueError("weights.identity > 0 needs identity_network=... (a frozen face recogniser, e.g. "
                                 "instantrestore.idnet.load_identity_network(dir)); or set LossWeights(identity=0.0)")
            self.identity = IdentityLoss(identity_network, weights.hard_example_lambda, hard_example_reference)
        else:
            self.identity = None

        if weights.adversarial > 0 and discriminator is None:
            raise ValueError("weights.adversarial > 0 needs discriminator=Discriminator.from_pretrained(...) "
                             "(or Discriminator.tiny(seed)); or set LossWeights(adversarial=0.0)")
        self.discriminator = discriminator if weights.adversarial > 0 else None

        if weights.face_alignment > 0:
            if face_alignment.distance not in ("lpips", "l1"):
                raise ValueError(f"face alignment distance must be 'lpips' or 'l1', not {face_alignment.distance!r}")
            distance = self.lpips if face_alignment.distance == "lpips" else None
            self.face_alignment = MaskedFaceAlignmentLoss(face_alignment, distance)
        else:
            self.face_alignment = None

    def capture_layers(self, injected_layers: list[str]) -> list[str]:
        """The layers whose attention ``forward(capture=...)`` must return; [] when LAS is off."""
        if self.weights.landmark_attention <= 0:
            return []
        return resolve_layers(self.landmark_config.layers, injected_layers)

    def _landmark_term(self, output: "GeneratorOutput", batch: dict, image_hw: tuple[int, int],
                       generator: torch.Generator | None = None,
                       stats: dict[str, float] | None = None) -> torch.Tensor:
        if not output.attention:
            raise ValueError("landmark attention weight > 0 but the output holds no attention; call the model with "
                             "capture=loss.capture_layers(model.injected_layers)")
        for key in ("landmarks_hq", "landmarks_refs", "refs"):
            if key not in batch:
                raise ValueError(f"landmark attention needs batch[{key!r}]; or set LossWeights(landmark_attention=0.0)")
        c = self.landmark_config
        ref_hw = tuple(batch["refs"].shape[-2:])
        if c.form == "official":
            return official_landmark_attention_loss(
                list(output.attention.values()), batch["landmarks_hq"], batch["landmarks_refs"], batch.get("ref_mask"),
                image_hw, ref_hw, _batch_generator(batch) if generator is None else generator, c.official_batch,
                c.official_transpose, c.points, stats=stats)
        terms = [landmark_attention_loss(captured, batch["landmarks_hq"], batch["landmarks_refs"],
                                         batch.get("ref_mask"), image_hw, ref_hw, c.sigma, c.radius, c.points, form=c.form,
                                         stats=stats)
                 for captured in output.attention.values()]
        return torch.stack(terms).mean()  # averaged over layers: the weight does not depend on their count

    def generator_loss(self, output: "GeneratorOutput", batch: dict,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted eq. 8 for the generator step.

        output: the model's forward on batch["lq"] (with the attention of ``capture_layers``);
        batch: collated dataset items (hq [B, 3, H, W] in [-1, 1], refs, ref_mask, landmarks_hq,
        landmarks_refs). LAS supervises every layer present in ``output.attention``; with
        ``form="official"`` it draws one of them and one reference from ``generator`` (e.g. the
        step's generator); None seeds one from batch["index"], so a repeated batch repeats its draw.
        Returns (weighted total, {"loss": total, term name: unweighted value, ...}); with LAS on, also
        ``las_queries`` (query rows supervised, summed over the supervised layers) and ``las_samples``
        (samples with a supervised query, the most over the layers); both 0 when no landmark is usable, and
        then the LAS term is 0 with no gradient.
        """
        w = self.weights
        restored = output.image
        target = batch["hq"].to(restored.device, restored.dtype)
        image_hw = tuple(restored.shape[-2:])
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        extras: dict[str, float] = {}
        if self.lpips is not None and w.lpips > 0:
            terms["lpips"] = (w.lpips, self.lpips(restored, target))
        if self.ms_ssim is not None:
            terms["ms_ssim"] = (w.ms_ssim, self.ms_ssim(restored, target))
        if w.l1 > 0:
            terms["l1"] = (w.l1, l1_loss(restored, target))
        if w.l2 > 0:
            terms["l2"] = (w.l2, l2_loss(restored, target))
        if self.identity is not None:
            refs = batch.get("refs")
            mask = batch.get("ref_mask")
            value, parts = self.identity(restored, target, None if refs is None else refs.to(restored.device),
                                         None if mask is None else mask.to(restored.device))
            terms["identity"] = (w.identity, value)
            if len(parts) > 1:
                extras.update({name: float(part.detach()) for name, part in parts.items()})
        if self.discriminator is not None:
            with frozen(self.discriminator):  # G's step must not write into D's gradients
                logits = self.discriminator(restored)
            terms["adversarial"] = (w.adversarial, generator_adversarial_loss(logits, self.gan_loss))
        if w.landmark_attention > 0:
            stats: dict[str, float] = {}
            terms["landmark_attention"] = (w.landmark_attention,
                                           self._landmark_term(output, batch, image_hw, generator, stats))
            extras["las_queries"] = stats.get("supervised_queries", 0.0)
            extras["las_samples"] = stats.get("supervised_samples", 0.0)
        if self.face_alignment is not None:
            terms["face_alignment"] = (w.face_alignment,
                                       self.face_alignment(restored, target, batch["landmarks_hq"]))
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        total = sum(weight * value for weight, value in terms.values())
        log = {"loss": float(total.detach())}
        log.update({name: float(value.detach()) for name, (_, value) in terms.items()})
        log.update(extras)
        return total, log

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """D's objective (eq. 2, unweighted) on restored ``fake`` (detached here) and real ``real``
        images [B, 3, H, W] in [-1, 1]. Returns (loss, {"d_loss", "d_real", "d_fake"}: mean logits)."""
        if self.discriminator is None:
            raise ValueError("no discriminator: the adversarial weight is 0")
        real_logits = self.discriminator(real.to(fake.device, fake.dtype))
        fake_logits = self.discriminator(fake.detach())
        loss = discriminator_adversarial_loss(real_logits, fake_logits, self.gan_loss)
        return loss, {"d_loss": float(loss.detach()), "d_real": float(real_logits.detach().float().mean()),
                      "d_fake": float(fake_logits.detach().float().mean())}


def _batch_generator(batch: dict) -> torch.Generator:
    """A generator that is a pure function of the batch's dataset indices (0 when it has none)."""
    index = batch.get("index", [])
    index = index.tolist() if isinstance(index, torch.Tensor) else list(index)
    seq = np.random.SeedSequence([0x1A5, *(int(i) for i in index)])
    return torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0] >> 1))
