"""Texts shipped with the quantizer (written for llmrt; no downloads).

CALIBRATION: the ``--calib-builtin`` calibration text (~6 KB of varied English prose).
EVALUATION: a separate ~3 KB text for the perplexity check (``python -m llmrt.quantize.ppl``);
it shares no sentence with the calibration text.
"""

CALIBRATION = """\
The village sat at the bend of a slow river, where the water widened into a shallow pool before \
it turned south toward the sea. Every spring the banks flooded, and every summer the farmers \
rebuilt the low stone walls that kept the sheep out of the barley. Nobody remembered who had \
built the first wall, but everyone agreed that it had been built badly.

A computer stores numbers in binary, as sequences of ones and zeros. An integer with eight bits \
can hold any value from 0 to 255, and a sixteen-bit integer can hold values up to 65535. \
Floating-point numbers are different: they keep a sign, an exponent and a fraction, so they can \
represent both very large and very small values, at the cost of rounding almost every result.

To make bread, mix five hundred grams of flour with ten grams of salt, seven grams of dry yeast \
and about three hundred and fifty millilitres of warm water. Knead the dough for ten minutes \
until it is smooth and elastic, then cover it and let it rise for an hour in a warm place. Shape \
it into a loaf, let it rise again, and bake it at two hundred and twenty degrees for thirty \
minutes.

"Are you sure this is the right road?" asked Maria, looking at the map upside down.
"Of course I'm sure," said her brother. "We passed the old mill ten minutes ago."
"We passed a mill. I am not convinced it was the old one."
They drove on in silence until the road ended at a locked gate and a field full of cows.

The heart is a muscular organ that pumps blood through the body. In humans it has four \
chambers: two atria that receive blood and two ventricles that push it out. The right side sends \
blood to the lungs, where it picks up oxygen and releases carbon dioxide; the left side sends the \
oxygen-rich blood to the rest of the body through the aorta.

Trade routes shaped the growth of many early cities. Merchants carried salt, metals, cloth and \
spices over long distances, and the towns where routes crossed grew rich by taxing the goods \
that passed through them. Markets needed weights, measures and records, and some historians \
argue that writing itself first developed to keep accounts of grain and livestock.

The committee met on Tuesday to discuss the budget for the next year. After a long debate, the \
members voted to increase spending on public transport and to reduce the cost of parking permits \
for residents. The mayor said the decision would make the city center easier to reach without a \
car, while critics warned that shop owners could lose customers.

Photosynthesis is the process by which plants, algae and some bacteria turn light into chemical \
energy. Chlorophyll absorbs mostly red and blue light and reflects green, which is why leaves \
look green. The plant uses the energy to combine carbon dioxide and water into sugars, and \
oxygen is released as a by-product.

When you write a program, start with the simplest version that works. Test it with small \
inputs whose answers you already know, then with the edge cases: an empty list, a single \
element, a very large number, a negative one. Only when the simple version is correct should you \
try to make it faster, and you should measure before and after every change.

In the autumn the geese flew south in long uneven lines, calling to each other over the \
harvested fields. The children counted them from the schoolyard and argued about how far they \
would go. Their teacher unrolled a map of the world and traced a path over mountains, lakes and \
two different seas, and the argument became a geography lesson.

The museum reopened last month after a two-year renovation. Its new wing holds a collection of \
clocks, from simple water clocks and sundials to pendulum clocks and the first quartz watches. \
Visitors can see how each design tried to solve the same problem: how to divide the day into \
equal parts that everyone could agree on.

Good sleep matters more than most people think. Adults generally need seven to nine hours a \
night, and regular times for going to bed and waking up help the body keep its rhythm. Bright \
screens late in the evening, heavy meals and coffee in the afternoon can all make it harder to \
fall asleep.

The ship left the harbour at dawn with a crew of twelve, a cargo of timber and enough fresh water \
for three weeks. On the fourth day the wind dropped and the sea became as flat as glass. The \
captain ordered the sails furled and the men spent the afternoon mending nets, telling stories \
and watching the horizon for the first sign of a breeze.

Mathematics often begins with patterns. The sum of the first n odd numbers is always a perfect \
square: one, then one plus three equals four, then four plus five equals nine, and so on. A \
proof shows why the pattern must continue forever, and that certainty is what separates a \
theorem from a good guess.

Volcanoes form where molten rock from deep inside the Earth reaches the surface. Some erupt \
explosively, throwing ash high into the atmosphere, while others release slow rivers of lava \
that can flow for kilometres. The soil around old volcanoes is often very fertile, which is \
one reason people continue to live close to them despite the danger.

Dear Sam, thank you for the books you sent. The one about lighthouses was wonderful and I read \
it in two evenings. The weather here has been cold and wet, but the garden is finally showing \
some green. Please write soon and tell me how the new job is going. With love, Anna.
"""

EVALUATION = """\
Glass is made by melting sand, soda and lime at very high temperatures and letting the liquid \
cool before its atoms can arrange themselves into crystals. The result is a hard, transparent \
solid that is, in a sense, a frozen liquid. Glassmakers learned thousands of years ago to blow \
air into a blob of molten glass at the end of a pipe, which made thin bottles and cups cheap \
enough for ordinary households.

The library in our town opens at nine in the morning and closes at eight in the evening, \
except on Sundays. Anyone who lives in the district can borrow up to ten books at a time for \
three weeks. Newspapers and magazines must be read in the reading room, and the computers can \
be booked for one hour a day. Children under twelve need a card signed by a parent.

Honey bees live in colonies of tens of thousands of workers, a few hundred males and a single \
queen. The workers collect nectar and pollen, build the wax comb, feed the young and guard the \
entrance. When a forager finds a rich patch of flowers, she returns to the hive and performs a \
dance whose angle and length tell the others the direction and distance of the food.

"I think we should leave before it gets dark," said the older woman, glancing at the clouds.
"We still have an hour of light," her friend replied. "And the view from the top is worth it."
"The view will still be there tomorrow. The path, in the rain, may not be."
In the end they turned back, and the storm arrived just as they reached the car.

A good map leaves things out. A street plan shows roads, parks and important buildings but not \
every tree or lamp post, because too much detail would make it impossible to read. Choosing what \
to omit is the real skill of the mapmaker, and different maps of the same place can look \
completely different depending on whether they are meant for drivers, walkers or sailors.

The first railways carried coal from mines to rivers and ports. Within a few decades they had \
changed daily life: fresh food could reach cities from distant farms, newspapers arrived the \
same morning they were printed, and towns had to agree on a common time so that the timetables \
made sense. Before the railway, each town had simply set its clocks by the sun.

Learning a musical instrument takes patience. Beginners should practise a little every day \
rather than for many hours once a week, and they should play slowly enough to get every note \
right before trying to play fast. Recording yourself is useful, because it is hard to hear your \
own mistakes while you are concentrating on the next bar.

Rain forms when water vapour in the air cools and condenses on tiny particles of dust or salt. \
The droplets collide and merge until they are heavy enough to fall. In cold clouds, ice \
crystals grow at the expense of the surrounding droplets and may melt into rain on the way \
down, or reach the ground as snow if the air near the surface is cold enough.
"""


# ----------------------------------------------------------------------------- pydoc texts
# A larger, offline source of English(-ish) technical text: the "help topics" pages of the
# Python documentation that ship with CPython (pydoc_data.topics, ~465 KB). Used by
# ``--calib-pydoc`` and python/tools/eval_quant_ppl.py.
#
# EVAL_PYDOC_FILE (committed, ~33 KB, ~7.7 K SmolLM2 tokens) is 8 of the ~4 KB chunks of
# pydoc_paragraphs() (chunks 5, 15, ..., 75, as made by CPython 3.11.7); the calibration text is
# every other paragraph, so the two share no paragraph whatever the Python version.

import os as _os

EVAL_PYDOC_FILE = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "eval_pydoc.txt")


def pydoc_paragraphs() -> list:
    """The unique paragraphs (blank-line separated) of pydoc_data.topics, topics in sorted
    order, first occurrence kept (topics such as "compound" repeat "if", "with", ...)."""
    from pydoc_data.topics import topics
    seen, out = set(), []
    for k in sorted(topics):
        for p in topics[k].split("\n\n"):
            p = p.strip("\n")
            if p.strip() and p not in seen:
                seen.add(p)
                out.append(p)
    return out


def pydoc_chunks(size: int = 4000) -> list:
    """pydoc_paragraphs() joined into consecutive chunks of >= size characters."""
    chunks, cur, n = [], [], 0
    for p in pydoc_paragraphs():
        cur.append(p)
        n += len(p) + 2
        if n >= size:
            chunks.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def pydoc_eval_text() -> str:
    with open(EVAL_PYDOC_FILE, encoding="utf-8") as f:
        return f.read()


def pydoc_calibration_text() -> str:
    """Every pydoc paragraph that is not in the evaluation text (~340 KB)."""
    held_out = {p.strip("\n") for p in pydoc_eval_text().split("\n\n")}
    return "\n\n".join(p for p in pydoc_paragraphs() if p not in held_out) + "\n"
