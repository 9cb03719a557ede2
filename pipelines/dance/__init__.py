"""Dance (Everybody Dance Now): poses, labels, pose normalisation and the pose-to-video GAN.

Part A (poses) - nothing heavy is imported here; import the modules themselves:

* ``skeleton``: :class:`Pose` (BODY_23 body (23, 3) or None, face (70, 3), hands (21, 3); frame
  pixels), COCO-18 / BODY_25 conversions, OpenPose yml/json readers.
* ``openpose``: the Hzzone/CMU OpenPose COCO body network (checkpoint ``edn/openpose_body``),
  ``BodyEstimator`` (build once, call per frame or batch), ``pick_person``.
* ``poses``: ``estimate_poses(frames_rgb, *, estimator=None, faces=True, hands=None, batch_size=4) -> list[Pose]``
  (body, face points, and hands with a ``HandEstimator``).
* ``hands``: the OpenPose hand network and estimator (checkpoint ``edn/openpose_hand``):
  ``hand_boxes(person_coco18, shape)`` (handDetect), ``HandEstimator(crop_bgr)`` (21 peaks),
  ``detect_hands(frame_bgr, person, estimator) -> (right, left)`` (21, 3) each.
* ``face_points``: ``face_points(frame_rgb, body) -> (70, 3)`` OpenPose face layout (68 landmarks
  from face-alignment or dlib + 2 pupils), searched around EDN's face box.
* ``smoothing``: ``smooth_tracks(poses, window=7) -> list[Pose]`` (centred adaptive median).
* ``render``: ``render_label(pose, size=(1024, 512), *, frame_shape=None) -> (label_rgb_uint8, face_box)``
  with ``face_box = (miny, maxy, minx, maxx)`` in label pixels; ``fit_pose_to_canvas`` /
  ``fit_frame_to_canvas`` / ``resize_to_label`` for frames that are not 1920x1080.
* ``normalize``: ``normalize_poses(source_poses, target_poses) -> list[Pose]`` (N - 6 smoothed poses)
  and ``normalize_sequence(...) -> Normalization`` (``.poses``, ``.frames`` = the source frame each
  pose belongs to, ``.params``); poses in 1080x1920 canvas coordinates.
* ``sample``: ``make_sample_target(seconds, fps, size, seed) -> (frames, poses)`` and
  ``make_sample_motion(...)``: an offline procedurally drawn dancer with exact keypoints;
  ``write_sample_video(frames, path, fps)``.

Part B (GAN), each module below only imports the ones above it:

* ``networks`` / ``losses``: pix2pixHD generators and discriminators (original key names), GAN losses.
* ``files``: atomic npz writes of a target folder (``save_npz``); JSON state through
  ``pipelines.common.disk.write_json`` / ``read_json``.
* ``config``: ``TrainConfig`` (one run's settings, ``job/config.json``) and ``check_resumable``.
* ``target``: a target's data (and ``label_parts``/``for_labels``: what its labels draw): ``prepare_target_from_arrays`` / ``prepare_target_from_video``,
  ``detect_poses`` / ``detect_video_poses``, ``save_poses`` / ``load_poses``, ``target_training_data``
  (labels + face boxes rendered once per size, cached), ``split_holdout``, ``scaled_face_box``.
* ``transfer``: ``generate_sequence`` (the test-time loop) and ``DanceTransferPipeline`` (video in, video out).
* ``trainer``: ``Trainer`` (the GAN loop, checkpoints, model export) and ``Status`` (``job/status.json``).
* ``jobs``: ``launch`` (the one way to start a run, background process or here), ``run_job``,
  ``read_status``, ``request_stop``; ``python -m pipelines.dance.jobs <target dir>``.
* ``pipeline``: the user-facing API (targets by id, presets, ``train_target``, ``transfer``).
"""
