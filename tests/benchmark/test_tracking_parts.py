

def test_tensorboard_puts_both_fits_of_a_cell_on_one_epoch_axis(tmp_path):
    pytest.importorskip("tensorboard")
    import keras
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchmark.tracking.callbacks import PhasedTensorBoard

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    board = PhasedTensorBoard(tmp_path / "tb")  # one callback for both phases, as train_two_phase passes it
    x, y = np.zeros((8, 3)), np.zeros((8, 2))
    for _ in range(2):  # phase 1, then phase 2 (a new fit, epochs from 0 again)
        model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[board])
    for part in ("train", "validation"):
        events = EventAccumulator(str(tmp_path / "tb" / part), size_guidance={"tensors": 0}).Reload()
        assert sorted(e.step for e in events.Tensors("epoch_loss")) == [0, 1, 2, 3], part
