"""Security levels of RLWE parameters, from the HomomorphicEncryption.org standard.

The table gives, for each ring dimension N (poly modulus degree), the largest
total coefficient-modulus size in bits that keeps classical security at 128,
192 or 256 bits with a ternary secret (Albrecht et al., "Homomorphic Encryption
Security Standard", 2018, Table 1; the same numbers SEAL enforces).
"""

from __future__ import annotations

from secquant.errors import ParameterError

__all__ = ["MAX_COEFF_BITS", "estimate_security", "max_coeff_modulus_bits"]

#: security level -> {N: max log2(q)}
MAX_COEFF_BITS: dict[int, dict[int, int]] = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476},
}


def max_coeff_modulus_bits(poly_degree: int, security: int = 128) -> int:
    """Largest total bit size of the coefficient modulus for ``poly_degree`` at ``security`` bits.

    Raises:
        ParameterError: unknown degree or security level.
    """
    table = MAX_COEFF_BITS.get(security)
    if table is None or poly_degree not in table:
        raise ParameterError(
            f"no standard parameters for N={poly_degree} at {security}-bit security; "
            f"N must be one of {sorted(MAX_COEFF_BITS[128])} and security one of {sorted(MAX_COEFF_BITS)}"
        )
    return table[poly_degree]


def estimate_security(poly_degree: int, total_bits: int) -> int:
    """The highest standard level (256, 192, 128) these parameters reach, or 0 if below 128."""
    for level in (256, 192, 128):
        if MAX_COEFF_BITS[level].get(poly_degree, -1) >= total_bits:
            return level
    return 0
