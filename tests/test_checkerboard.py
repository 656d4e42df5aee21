"""The checkerboard's halves and classes: the one rule the coder and the rate term share."""

import numpy as np

from neofield import checkerboard


def test_the_anchors_are_the_nodes_whose_indices_sum_to_an_even_number():
    assert checkerboard.anchors((2, 3)).tolist() == [True, False, True, False, True, False]
    assert checkerboard.anchors((3,)).tolist() == [True, False, True]


def test_a_node_coded_second_is_classed_by_its_decoded_neighbours_distance_from_the_centre():
    # 1-D, 7 nodes: anchors at 0, 2, 4, 6 hold distances 0, 0, 1, 5 from centre 10; the others' neighbours'
    # means, in tenths, against the edges (1, 3, 7, 15, 30): node 1's 0 -> class 0, node 3's 5 -> 2, node 5's 30 -> 5
    first = np.array([10, 10, 11, 15])
    assert checkerboard.context_classes(first, (7,), 10).tolist() == [0, 2, 5]
    # 2-D: the anchors of a 3x3 are its corners and centre; the middle of each edge sees two corners and the
    # centre, so a lone distance of 3 at the centre gives each a mean of 10 tenths (class 3)
    grid = np.array([0, 0, 3, 0, 0]) + 7
    assert checkerboard.context_classes(grid, (3, 3), 7).tolist() == [3, 3, 3, 3]


def test_a_grid_of_one_node_is_all_anchor_and_a_lone_neighbour_sets_the_class_alone():
    assert checkerboard.context_classes(np.array([9]), (1, 1), 0).tolist() == []
    assert checkerboard.context_classes(np.array([5]), (1, 2), 0).tolist() == [5]  # a mean of 50 tenths
    assert checkerboard.context_classes(np.array([0]), (1, 2), 0).tolist() == [0]
