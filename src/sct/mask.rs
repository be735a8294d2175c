//! Binary-mask helpers shared by the body masks of eval (from the real CT) and of translate
//! (from the MRI): 3-D connected components and 2-D hole filling.

/// The 6-connected components of a [depth, rows, cols] mask: each voxel's label (0 outside
/// the mask; components numbered from 1 in the order their first voxel is met in memory
/// order) and each label's voxel count (index 0: none).
pub fn label_components(mask: &[bool], dims: [usize; 3]) -> (Vec<u32>, Vec<usize>) {
    let [depth, rows, cols] = dims;
    let plane = rows * cols;
    let mut label = vec![0u32; mask.len()];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        let mut size = 0;
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (k, r, c) = (i / plane, (i % plane) / cols, i % cols);
            let neighbours = [
                (k > 0).then(|| i - plane),
                (k + 1 < depth).then(|| i + plane),
                (r > 0).then(|| i - cols),
                (r + 1 < rows).then(|| i + cols),
                (c > 0).then(|| i - 1),
                (c + 1 < cols).then(|| i + 1),
            ];
            for j in neighbours.into_iter().flatten() {
                if mask[j] && label[j] == 0 {
                    label[j] = id;
                    stack.push(j);
                }
            }
        }
        sizes.push(size);
    }
    (label, sizes)
}

/// Sets every unset pixel of a rows x cols slice that is not 4-connected to the border
/// through unset pixels (the holes).
pub fn fill_holes(m: &mut [bool], rows: usize, cols: usize) {
    let mut outside = vec![false; m.len()];
    let mut stack: Vec<usize> = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if (r == 0 || c == 0 || r + 1 == rows || c + 1 == cols) && !m[i] {
                outside[i] = true;
                stack.push(i);
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (r, c) = (i / cols, i % cols);
        let neighbours = [
            (r > 0).then(|| i - cols),
            (r + 1 < rows).then(|| i + cols),
            (c > 0).then(|| i - 1),
            (c + 1 < cols).then(|| i + 1),
        ];
        for j in neighbours.into_iter().flatten() {
            if !m[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    for (v, o) in m.iter_mut().zip(outside) {
        *v = !o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_holes_on_a_small_volume() {
        // Two slices of 3x4: a ring with a hole in slice 0, a separate voxel in slice 1.
        #[rustfmt::skip]
        let m = [
            true, true, true, false,
            true, false, true, false,
            true, true, true, false,
            false, false, false, false,
            false, false, false, true,
            false, false, false, false,
        ].map(|b| b);
        let (label, sizes) = label_components(&m, [2, 3, 4]);
        assert_eq!(sizes, vec![0, 8, 1]);
        assert_eq!((label[0], label[19]), (1, 2));
        let mut s0 = m[..12].to_vec();
        fill_holes(&mut s0, 3, 4);
        assert!(s0[5] && !s0[3] && s0.iter().filter(|&&v| v).count() == 9);
    }
}
