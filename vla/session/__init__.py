"""Sessions on a robot: the one episode driver on the real-time runner and what it feeds.

Every app that moves a robot (vla-record, vla-rollout, vla-teleop, vla-deploy) runs its episodes through
`vla.session.driver.run_episodes`: connect, a `Runner` per session, episodes seeded in order, the episode
keys and Ctrl-C handled one way, and sinks for what an episode produces:

    driver.py     run_episodes, EpisodePlan, the EpisodeSink protocol, the buses' counters
    sinks.py      DatasetSink (LeRobotDataset, keep=all|success, re-record), VideoSink, ViewerSink
    report.py     success with its Wilson interval, per task; the one closing summary every app prints
    recording.py  vla-record's library: scripted or trained policies recorded into a dataset
    evaluate.py   vla-rollout's library: tasks x checkpoints, videos, report.json
    live.py       vla-teleop / vla-deploy's library: timed episodes, reset time, episode keys
    keys.py       the terminal's keys (cbreak) and the episode controls (n / x / q)
    config.py     the apps' structured configs (hydra schemas)

Nothing here imports an app; the apps build the robot and the policy and call in.
"""
