"""Physical constants and unit conversions used throughout dsphnf.

Units everywhere: lengths in kpc, velocities in km/s, masses in Msun.
This is the only place where G and the unit conversions are defined.
"""

#: Newton's constant in kpc (km/s)^2 / Msun.
G: float = 4.30091727e-6

#: One kpc in cm.
KPC_CM: float = 3.0856775814913673e21

#: One solar mass in GeV/c^2 (1.98841e30 kg x 5.60958860e26 GeV/kg).
MSUN_GEV: float = 1.98841e30 * 5.60958860e26

#: Msun^2 kpc^-5 expressed in GeV^2 cm^-5 (the J-factor unit).
J_UNIT: float = MSUN_GEV**2 / KPC_CM**5

#: Arcminutes per radian (R_kpc = R_arcmin * D_kpc / ARCMIN_PER_RAD).
ARCMIN_PER_RAD: float = 3437.7467707849396

__all__ = ["G", "KPC_CM", "MSUN_GEV", "J_UNIT", "ARCMIN_PER_RAD"]
