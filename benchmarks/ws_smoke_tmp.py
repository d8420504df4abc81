import torch, torch.nn.functional as F
from kernels.attn_wgmma import attention_fwd_wgmma
for causal in (False, True):
    q, k, v = (torch.randn(1, 2, 512, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = attention_fwd_wgmma(q, k, v, causal, tiling=(128, 128, 8, 2), ws=True)
    torch.cuda.synchronize()
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    print("ws smoke causal", causal, float((o.float() - ref).abs().max()))
