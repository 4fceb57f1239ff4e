"""The short explanations shown beside each view (Markdown)."""

from dynamics.papers import CITATIONS, SHORT

INTRO = """\
**Watch a GAN learn, and fail to learn.** The generator is a cloud of particles *x<sub>i</sub>*
coupled by a kernel Θ; the discriminator *D* pushes each of them towards the data. Pick a preset
and watch it run (Pause and Step stop and advance it), then turn the knobs: the live ones apply at
once; a new critic activation, loss, penalty kind or kernel goes on from where the particles are
(a dashed line in the time series marks the step); the other structural ones restart the run.
Or follow a *guided lesson* (in the sidebar).
"""

PARTICLES = """\
**Particles and critic.** Purple dots are the generator's particles, green dots samples of the
target, dashed circles the capture radius of each mode. The background is the discriminator *D*
(the colour bar below gives its value: green, high *D*, "looks real"; purple, low *D*, "looks
fake"). Every particle is pushed up its gradient, towards green,
*F<sub>j</sub>* = ∇*D*(*x<sub>j</sub>*) for the IPM loss, and the kernel spreads each push over the
cloud: *x<sub>i</sub>* += (η<sub>G</sub>/N) Σ<sub>j</sub> Θ<sub>ij</sub> *F<sub>j</sub>*.
Tick *show generator forces* to draw the *F<sub>j</sub>*. Targets with more than two dimensions
are shown in the plane of their two principal axes. Conditional transport has no critic value,
so its background stays blank: the forces come from the transport plans.
"""

SERIES = """\
**Over time.** *Coverage* is the fraction of modes holding at least one particle (`modes_covered`
counts them); the *mode entropy* is 1 when the captured particles are shared evenly. Your own
points, more than 50 of them, are a sample rather than clusters (each point would count as a
mode): that panel then shows distances of the particles to your points instead, the MMD², the
sliced W1 and the energy distance, all 0 when the two samples match. *Spread* is the cloud's size in units
of the mode spacing: it shrinks when the cloud collapses. The *collective* speed is how fast the
centre of mass moves per step, the *relative* speed how fast the particles move with respect to
each other. Strong coupling lets the collective motion win: the cloud travels as one blob and hops
from mode to mode.
"""

SPECTRUM = """\
**Kernel spectrum.** The two-number kernel Θ = (g1 − g2) I + g2 11ᵀ has two levels: the
*collective* one, g1 + (N − 1) g2, once (the centre of mass), and the *relative* one, g1 − g2,
N − 1 times (the shape of the cloud). Their ratio (1 + (N − 1) r)/(1 − r) diverges as r → 1: the
cloud then moves rigidly and cannot split across modes. Dense kernels (rbf, relu_ntk, network) show
every eigenvalue, with their top and median levels marked, up to 1500 particles; up to 6000, the top
32 (block Krylov).
"""

IMAGES = """\
**Samples.** For the digits target each particle is an 8×8 image: these are the first sixteen.
"""

CUSTOM = """\
Click on the canvas to add target points (drag to move them, select one and press Backspace to
delete it), then *Use drawn points*. Or upload a CSV file: one point per row, comma-separated,
an optional header row.
"""

SHARE = """\
The address bar always holds the preset, every changed knob and the seed, and your own drawn or
uploaded points while they are few enough for a link (a note says when they are not): copy it to
share exactly this set-up.
"""

METERS = {   # one paragraph per companion meter (`app.lab.meters`), shown while it applies
    "ct": f"""\
**Conditional transport ({SHORT['C']}).** The loss the particles descend is
ρ·*forward* + (1 − ρ)·*backward*. The *forward* cost asks every data point to find particles near
it: it falls only when all modes are covered. The *backward* cost asks every particle to find data
near it: it falls when particles sit sharply on some mode, even a few. ρ = 1 covers the modes but
smears mass between them, ρ = 0 seeks a few modes; ρ = 0.5 balances the two, provided
no particle jumps too far in one step: *ct.max_step* (an advanced knob) caps each particle's move;
without it the first particles to reach a mode grab all its data and the rest lag behind.

*{CITATIONS['C']}*
""",
    "approx": f"""\
**Approximability ({SHORT['B']}).** How much of the true distance the critic sees: its IPM
E<sub>data</sub>*D* − E<sub>particles</sub>*D* on a fresh data batch, over the exact
Wasserstein-1 distance of the same samples. A 1-Lipschitz critic (the *f1_neuron*) stays within
[−1, 1]; a ratio near 0 while the particles are far from the data means the critic is blind to
what is wrong, e.g. a symmetric mode collapse. The *train − test* gap is the IPM on the batch the
critic was trained on minus the one on the fresh batch: above 0, it fits sampling noise. Other
critics are not Lipschitz-normalised, so their ratio is a trend, not a fraction.

*{CITATIONS['B']}*
""",
    "paper_a": f"""\
**Feature learning vs a fixed kernel ({SHORT['A']}).** Four distances of the particles to the data,
each divided by its *null*: the same estimate between two independent data batches, the floor
that sampling noise alone reaches. The F1 IPM (best single ReLU neuron, a learned feature), the F2
IPM (the same neurons averaged with fixed random weights, a kernel MMD), the max-sliced W1 (the
best direction) and the sliced W1 (the average direction). A line near 1 cannot tell the particles
from data: on the sphere pair, F2 and the sliced W1 sit near there while F1 and the max-sliced W1
still see the hidden direction.

*{CITATIONS['A']}*
""",
}
