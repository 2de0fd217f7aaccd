"""Binary mask operations shared by the methods: morphology, bounding boxes, connected components, mask stacks.

No paper of its own: exact, batched, pure-torch versions of the OpenCV / scipy operations that ZONE's released code
(Li et al., CVPR 2024, arXiv 2312.16794) applies around Region-IoU (§4.3, Eq. 6) and in the edge smoother's
g = binarise, close, fill (§4.4, Eq. 7), plus the conversion of any mask layout into one bool stack.

Index (operation → function):
- dilation X ⊕ B, erosion X ⊖ B, closing X • B = (X ⊕ B) ⊖ B with a flat (2r_y+1) × (2r_x+1) rectangle
                                                  → binary_morphology.dilate, binary_morphology.erode,
                                                    binary_morphology.close
  (ZONE §4.4: M_d = M_f ⊕ B and the 21 × 21 closing of Eq. 7, used by zone/fft_edge_smoother.py)
- hole filling: background regions that do not touch the border → connected_components.fill_holes (g in Eq. 7)
- 4-connected components as merged row runs      → connected_components.row_runs
- removal of components under a minimum area     → connected_components.remove_small_regions
  (ZONE's released filter_small_regions before and after Eq. 6, used by zone/region_iou.py)
- the box around every True pixel, with a margin → bounding_box.bounding_box
- [H, W], [N, H, W], [N, 1, H, W] or lists, any dtype → bool [N, H, W]
                                                  → mask_stack.mask_stack, mask_stack.as_mask_batch

Modules:
- binary_morphology.py — dilation, erosion and closing by flat rectangles (separable sparse-table running maximum).
- connected_components.py — 4-connected labelling on row runs, hole filling, small-region removal.
- bounding_box.py — bounding boxes of masks, to confine local work to where a mask is.
- mask_stack.py — bool [N, H, W] stacks from the mask layouts other packs produce.
"""
